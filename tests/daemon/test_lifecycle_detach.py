"""--detach readiness and failure codes, --no-chdir, --pidfile locking and takeover."""

import os
import signal

from pyprocd.daemon import lifecycle
from pyprocd.daemon.pidfile import Pidfile, PidfileError, read_pidfile
from tests.daemon.lifecycle_helpers import alive, read_text, run_dummy


def _start(procs, tmp_path, *extra, name="d"):
    marker = tmp_path / f"{name}.marker"
    pidfile = tmp_path / f"{name}.pid"
    result = run_dummy("--detach", f"--pidfile={pidfile}", f"--marker={marker}", *extra)
    return result, marker, pidfile


def _stop(procs, pid):
    os.kill(pid, signal.SIGTERM)
    return procs.reap(pid)


def test_detach_returns_only_when_ready_and_daemon_runs_detached(procs, tmp_path):
    result, marker, pidfile = _start(procs, tmp_path)
    assert result.returncode == 0, result.stderr
    # Ready was signalled after the marker was written: it must be there now.
    pid, _starts, cwd = read_text(marker).split()
    pid = procs.track(int(pid))
    assert alive(pid)
    assert cwd == "/"  # chdir / by default
    assert read_text(pidfile) == f"{pid}\n"
    assert read_pidfile(str(pidfile)) == pid  # locked by the daemon
    assert os.getsid(pid) == pid  # own session: no controlling terminal
    status = _stop(procs, pid)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not pidfile.exists()  # removed on clean exit


def test_no_chdir_keeps_directory(procs, tmp_path):
    result, marker, _ = _start(procs, tmp_path, "--no-chdir")
    assert result.returncode == 0, result.stderr
    pid, _, cwd = read_text(marker).split()
    procs.track(int(pid))
    assert cwd == os.getcwd()
    _stop(procs, int(pid))


def test_detach_exits_with_startup_failure_code(procs, tmp_path):
    result, marker, _pidfile = _start(procs, tmp_path, "--fail=3")
    assert result.returncode == 3
    assert "failing on purpose" in result.stderr  # stderr still attached
    assert not marker.exists()


def test_detach_reports_unhandled_exception_as_crash_code(procs, tmp_path):
    result, _, _ = _start(procs, tmp_path, "--raise")
    assert result.returncode == lifecycle.EXIT_CRASH
    assert "dummy start-up bug" in result.stderr


def test_second_daemon_on_same_pidfile_refuses(procs, tmp_path):
    first, marker, pidfile = _start(procs, tmp_path)
    assert first.returncode == 0, first.stderr
    pid = procs.track(int(read_text(marker).split()[0]))
    second = run_dummy("--detach", f"--pidfile={pidfile}", f"--marker={tmp_path}/second")
    assert second.returncode == lifecycle.EXIT_STARTUP_FAILED
    assert f"already running (pid {pid})" in second.stderr
    assert read_text(pidfile) == f"{pid}\n"  # untouched
    assert alive(pid)
    _stop(procs, pid)


def test_stale_pidfile_is_taken_over(procs, tmp_path):
    pidfile = tmp_path / "d.pid"
    # A pid that is certainly dead, and a file nobody locks: stale.
    pidfile.write_text("999999999\n")
    result, marker, _ = _start(procs, tmp_path)
    assert result.returncode == 0, result.stderr
    pid = procs.track(int(read_text(marker).split()[0]))
    assert read_text(pidfile) == f"{pid}\n"
    _stop(procs, pid)


def test_pidfile_of_killed_daemon_is_stale_and_taken_over(procs, tmp_path):
    result, marker, pidfile = _start(procs, tmp_path)
    assert result.returncode == 0, result.stderr
    old = procs.track(int(read_text(marker).split()[0]))
    os.kill(old, signal.SIGKILL)
    procs.reap(old)
    assert read_text(pidfile) == f"{old}\n"  # left behind...
    assert read_pidfile(str(pidfile)) is None  # ...but nobody holds the lock
    result, marker, _ = _start(procs, tmp_path)
    assert result.returncode == 0, result.stderr
    new = procs.track(int(read_text(marker).split()[0]))
    assert read_text(pidfile) == f"{new}\n"
    _stop(procs, new)


def test_overwrite_pidfile_replaces_existing_file(tmp_path):
    path = tmp_path / "x.pid"
    path.write_text("junk")
    owned = Pidfile.create(str(path), overwrite=True)
    try:
        assert read_text(path) == f"{os.getpid()}\n"
    finally:
        owned.remove()
    assert not path.exists()


def test_pidfile_refusal_names_the_owner_in_process(procs, tmp_path):
    path = str(tmp_path / "x.pid")
    owned = Pidfile.create(path)
    try:
        # fcntl locks are per process: probe from a child.
        pid = os.fork()
        if pid == 0:
            try:
                Pidfile.create(path)
                os._exit(1)
            except PidfileError as e:
                os._exit(0 if e.pid == os.getppid() else 2)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        owned.remove()


def test_parse_args_splits_lifecycle_options():
    opts, rest = lifecycle.parse_args(
        ["-s", "/tmp/ubus.sock", "--detach", "--pidfile", "--monitor", "--no-chdir",
         "--state-file=/tmp/st.json", "-d", "3"])
    assert rest == ["-s", "/tmp/ubus.sock", "-d", "3"]
    assert opts.detach and opts.monitor and not opts.chdir
    assert opts.pidfile == "/var/run/pyprocd.pid"
    assert opts.state_file == "/tmp/st.json"
    opts, _ = lifecycle.parse_args(["--pidfile=rel.pid"])
    assert opts.pidfile == os.path.abspath("rel.pid")
    assert lifecycle.parse_args([])[0].pidfile is None
