"""The ubus CLI's error regimes and options (spec §7), against the daemon on the host bus."""

import signal
import subprocess
import sys

import pytest

from pyprocd.bus.ubuscli import USAGE
from tests.e2e.stack import Stack, wait_for

USAGE_TEXT = USAGE.format(prog="ubus")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("cli")).start()
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("argv,code,stdout,stderr", [
    ([], 1, "", USAGE_TEXT),
    (["-x", "list"], 1, "", "ubus: invalid option -- 'x'\n" + USAGE_TEXT),
    (["-m", "bogus", "monitor"], 1, "", USAGE_TEXT),
    (["frobnicate"], 254, "", USAGE_TEXT),
    (["call", "service"], 254, "", USAGE_TEXT),
    (["-S", "list", "service"], 0, "service\n", ""),
    (["list", "nothing*"], 4, "", "Command failed: Not found\n"),
    (["-S", "call", "service", "list"], 0, "{}\n", ""),
    (["call", "service", "list"], 0, "{\n\t\n}\n", ""),
    (["call", "service", "nosuch"], 253, "",
     "Command failed: ubus call service nosuch (Method not found)\n"),
    (["-S", "call", "service", "nosuch"], 3, "", ""),
    (["call", "service", "set", "[1]"], 244, "",
     "Command failed: ubus call service set [1] (Parsing message data failed)\n"),
    (["send", "foo", "{bad"], 12, "", "Command failed: Parsing message data failed\n"),
    (["send", "ubus.mine"], 6, "", "Command failed: Permission denied\n"),
    (["-t", "0", "wait_for", "nothere"], 7, "", "Command failed: Request timed out\n"),
    (["subscribe"], 255, "", "You need to specify an object to subscribe to\n"),
    (["subscribe", "nothing"], 255, "", "Error while registering for event 'nothing': Not found\n"),
])
def test_script_mode(stack, argv, code, stdout, stderr):
    assert stack.ubus(*argv) == (code, stdout, stderr)


def test_terminal_mode(stack):
    assert stack.ubus("call", "service", "nosuch", tty=True) == \
        (3, "", "Command failed: Method not found\n")
    assert stack.ubus("call", "service", "set", "{}", tty=True) == \
        (2, "", "Command failed: Invalid argument\n")


def test_cannot_connect(tmp_path):
    stack = Stack(tmp_path)
    assert stack.ubus("list") == (255, "", "Failed to connect to ubus\n")
    assert stack.ubus("-S", "list") == (255, "", "")


def test_monitor_filters(stack):
    argv = [sys.executable, "-m", "pyprocd", "ubus", "-s", stack.socket, "-m", "invoke",
            "-M", "t", "monitor"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the monitor is on once a call shows up in its output; keep calling until then
        lines = []

        def seen():
            stack.call("list", {"name": "probe"})
            return proc.poll() is not None or _readable(proc.stdout)

        assert wait_for(seen, 60, 0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        lines = out.decode().splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert lines
    for line in lines:  # only invokes, only those the bus sent (to the daemon)
        assert line.startswith("-> ") and " invoke: {" in line, line
    assert any('"method":"list","data":{"name":"probe"},"user":' in line for line in lines)


def _readable(stream):
    import select

    return bool(select.select([stream], [], [], 0)[0])


def test_closed_stdout_ends_the_cli_at_once_like_sigpipe(stack):
    """`ubus call ... | true`: the C CLI dies of SIGPIPE on its first write; no
    traceback, no waiting out the call's timeout."""
    argv = [sys.executable, "-m", "pyprocd", "ubus", "-s", stack.socket, "-t", "20",
            "call", "service", "list"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the reply arrives
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGPIPE, err.decode()
    assert b"Traceback" not in err, err.decode()
