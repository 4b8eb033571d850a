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
