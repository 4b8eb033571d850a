"""The daemon's command line: parsed without argparse (memory), argparse-like errors."""

import pytest

from pyprocd.daemon.main import parse_args


def test_long_short_and_equals_forms():
    o = parse_args(["-s", "/a.sock", "--object=pyprocd", "--syslog", "/log", "--confdir=/c"])
    assert (o.socket, o.object, o.syslog, o.confdir) == ("/a.sock", "pyprocd", "/log", "/c")
    assert o.given == {"socket", "object", "syslog", "confdir"}
    assert parse_args(["-s/b.sock"]).socket == "/b.sock"


def test_defaults_are_not_marked_given():
    o = parse_args([])
    assert (o.socket, o.object) == ("/var/run/ubus/ubus.sock", "service")
    assert o.given == set()


@pytest.mark.parametrize("argv", [["--bogus"], ["--socket"], ["-x"], ["extra"]])
def test_usage_errors_exit_2_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2
    assert "pyprocd:" in capsys.readouterr().err


def test_help_lists_daemon_and_lifecycle_options(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--socket" in out and "--pidfile" in out and "--detach" in out


def test_daemon_start_path_does_not_import_argparse():
    import subprocess
    import sys
    code = ("import sys; import pyprocd.daemon.main as m; "
            "m.parse_args(['-s', '/x']); print('argparse' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=False)  # a failure shows its stderr in the assertion below
    assert out.stdout.strip() == "False", out.stderr


def test_running_is_called_after_a_set_in_every_start_mode(tmp_path):
    """procd runs `<init.d>/<name> running` after a `set` that carries
    instances; the daemon does, started in the foreground, detached or
    under --monitor (one composition root builds all three)."""
    import os
    import signal
    import stat as stat_mod

    from tests.daemon.lifecycle_helpers import Procs, alive, ppid_of, set_subreaper
    from tests.daemon.lifecycle_helpers import wait_for as wait
    from tests.e2e.stack import Stack

    for mode in ([], ["--detach", f"--pidfile={tmp_path}/d.pid"],
                 ["--detach", "--monitor", f"--pidfile={tmp_path}/m.pid"]):
        run = tmp_path / ("run-" + "-".join(m.split("=")[0].strip("-") for m in mode) or "fg")
        run.mkdir()
        stack = Stack(run)
        initd = run / "init.d"
        initd.mkdir()
        marker = run / "ran"
        script = initd / "svc"
        script.write_text(f"#!/bin/sh\necho \"$1\" >> {marker}\n")
        script.chmod(script.stat().st_mode | stat_mod.S_IXUSR)
        set_subreaper(True)
        procs = Procs()
        try:
            stack.start_bus()
            stack.start_daemon("--no-chdir", *mode)
            daemon = None
            if mode:
                pidfile = next(m for m in mode if m.startswith("--pidfile=")).split("=", 1)[1]
                with open(pidfile) as f:
                    daemon = procs.track(int(f.read()))
                procs.track(ppid_of(daemon))  # the monitor, or us
            assert stack.call("set", {"name": "svc", "instances": {
                "i": {"command": ["sleep", "100"]}}})[0] == 0
            assert wait(lambda m=marker: m.exists() and m.read_text() == "running\n",
                        what=f"running called ({mode or 'foreground'})")
            if daemon is not None:  # a clean stop: its instance goes with it
                os.kill(daemon, signal.SIGTERM)
                wait(lambda d=daemon: not alive(d), what="detached daemon stopped")
        finally:
            stack.close()
            procs.pids.discard(os.getpid())
            procs.cleanup()
            set_subreaper(False)
