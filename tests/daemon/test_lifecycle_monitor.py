"""--monitor: restart after a crash signal or an unhandled exception, not after a clean exit."""

import os
import signal

from pyprocd.daemon import lifecycle
from tests.daemon.lifecycle_helpers import alive, ppid_of, read_text, run_dummy, wait_for


def _daemon(marker):
    text = read_text(marker)
    if not text:
        return None
    pid, starts, _ = text.split()
    return int(pid), int(starts)


def test_monitor_restarts_segv_daemon_and_exits_with_clean_daemon(procs, tmp_path):
    marker, pidfile = tmp_path / "m", tmp_path / "d.pid"
    # The real 10 s restart throttle: the first crash comes right after start.
    result = run_dummy("--detach", "--monitor", f"--pidfile={pidfile}", f"--marker={marker}")
    assert result.returncode == 0, result.stderr
    first, starts = _daemon(marker)
    assert starts == 1
    monitor = procs.track(ppid_of(first))
    procs.track(first)
    assert monitor != os.getpid()
    assert read_text(f"/proc/{monitor}/comm").strip() == "pyprocd-mon"

    os.kill(first, signal.SIGSEGV)
    second, starts = wait_for(lambda: (_daemon(marker) or (0, 0))[1] == 2 and _daemon(marker),
                              what="the monitor to restart the daemon")
    procs.track(second)
    assert second != first and alive(second)
    assert ppid_of(second) == monitor
    wait_for(lambda: read_text(pidfile) == f"{second}\n", what="new pidfile")

    # A clean exit (SIGTERM -> exit 0) ends the monitor too, without a restart.
    os.kill(second, signal.SIGTERM)
    status = procs.reap(monitor)
    assert os.waitstatus_to_exitcode(status) == 0
    procs.reap(second)
    assert _daemon(marker)[1] == 2
    assert not pidfile.exists()


def test_monitor_restarts_after_unhandled_exception(procs, tmp_path):
    marker = tmp_path / "m"
    result = run_dummy("--detach", "--monitor", "--monitor-interval=0.2",
                       f"--marker={marker}", "--raise-after-ready")
    assert result.returncode == 0, result.stderr
    # The first run raised right after ready (exit EXIT_CRASH) and was restarted.
    pid, _starts = wait_for(lambda: (_daemon(marker) or (0, 0))[1] == 2 and _daemon(marker),
                           what="restart after an unhandled exception")
    procs.track(pid)
    monitor = procs.track(ppid_of(pid))
    # SIGTERM to the monitor is passed on; the daemon exits 0 and so does the monitor.
    os.kill(monitor, signal.SIGTERM)
    assert os.waitstatus_to_exitcode(procs.reap(monitor)) == 0
    procs.reap(pid)


def test_monitor_does_not_restart_a_failed_startup(procs, tmp_path):
    marker = tmp_path / "m"
    result = run_dummy("--detach", "--monitor", "--monitor-interval=0.2",
                       f"--marker={marker}", "--raise")
    assert result.returncode == lifecycle.EXIT_CRASH
    assert read_text(f"{marker}.count") == "1"


def test_crash_classification():
    segv = signal.SIGSEGV  # raw wait status of a signal death is the signal number
    assert lifecycle.is_crash(segv)
    assert lifecycle.is_crash(lifecycle.EXIT_CRASH << 8)
    assert not lifecycle.is_crash(0)
    assert not lifecycle.is_crash(signal.SIGTERM)
    assert not lifecycle.is_crash(signal.SIGKILL)
    assert lifecycle.exit_code_of(signal.SIGKILL) == 128 + 9


def _dumps_core_files():
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().strip()
    except OSError:
        return False
    return bool(pattern) and not pattern.startswith("|") and "/" not in pattern


def test_monitor_disables_core_dumps_after_the_first_core(procs, tmp_path):
    import pytest

    if not _dumps_core_files():
        pytest.skip("kernel core_pattern does not write a core file into the cwd")
    import resource
    import subprocess
    import sys

    from tests.daemon.lifecycle_helpers import DUMMY

    marker = tmp_path / "m"

    def allow_cores():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)

    result = subprocess.run(
        [sys.executable, DUMMY, "--detach", "--monitor", "--monitor-interval=0.2",
         "--no-chdir", f"--marker={marker}"],
        check=False, capture_output=True, text=True, cwd=tmp_path, preexec_fn=allow_cores)
    assert result.returncode == 0, result.stderr
    first, _ = _daemon(marker)
    procs.track(first)
    monitor = procs.track(ppid_of(first))
    with open(f"/proc/{first}/limits") as f:
        assert "Max core file size        unlimited" in f.read()
    os.kill(first, signal.SIGABRT)
    second, _ = wait_for(lambda: (_daemon(marker) or (0, 0))[1] == 2 and _daemon(marker),
                         what="restart after the core dump")
    procs.track(second)
    cores = [p for p in tmp_path.iterdir() if p.name.startswith("core")]
    assert cores  # the first crash did dump a core
    for core in cores:
        core.unlink()  # megabytes: do not leave them in pytest's kept temp dirs
    with open(f"/proc/{second}/limits") as f:
        core_line = next(line for line in f if line.startswith("Max core file size"))
    assert core_line.split()[4:6] == ["0", "0"]
    os.kill(second, signal.SIGTERM)
    assert os.waitstatus_to_exitcode(procs.reap(monitor)) == 0
