"""procd's recorded behaviour, replayed over real unix sockets.

The daemon and the host bus run as processes; each recorded call goes through
the ubus CLI (`ubus -s SOCKET call service METHOD JSON`, its code run in this
process to keep 127+ calls fast; one test below runs the CLI as its own
process) and is checked with the core's replay helper (same placeholders,
same deliberate deviations as the in-process replay in tests/core).
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import load_vectors
from tests.core.test_vectors import PATCHES, SKIPPED
from tests.core.vector_replay import pid_alive, replay_case
from tests.e2e.stack import Stack, object_listed, wait_for

CASES = {c["name"]: c for c in load_vectors("procd-behaviour")["cases"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("e2e")).start()
    try:
        yield s
    finally:
        s.close()


def _pump(seconds):
    wait_for(lambda: False, seconds)


def _delete_everything(stack):
    status, services = stack.call("list", {})
    assert status == 0
    for name in services or {}:
        stack.call("delete", {"name": name})
    assert wait_for(lambda: stack.call("list", {}) == (0, {}), 30)


@pytest.mark.parametrize("name", sorted(CASES))
def test_replay_over_ubus(name, stack):
    if name in SKIPPED:
        pytest.skip(SKIPPED[name])
    work = str(stack.dir)
    with open(os.path.join(work, "watched.conf"), "w") as f:
        f.write("x\n")
    try:
        replay_case(CASES[name], stack.call, _pump, work, stack.base_env(), PATCHES.get(name))
    finally:
        _delete_everything(stack)


def test_cli_process_against_daemon(stack):
    """The documented command, as its own process."""
    request = '{"name":"e2e","instances":{"i1":{"command":["/bin/sleep","1000"]}}}'
    base = [sys.executable, "-m", "pyprocd", "ubus", "-s", stack.socket]
    try:
        done = subprocess.run(base + ["call", "service", "set", request],
                              capture_output=True, timeout=60, check=False)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
        listed = subprocess.run(base + ["call", "service", "list", '{"name":"e2e"}'],
                                capture_output=True, timeout=60, check=False)
        assert listed.returncode == 0
        assert listed.stdout.startswith(b'{\n\t"e2e": {\n\t\t"instances": {\n\t\t\t"i1": {\n')
        missing = subprocess.run(base + ["call", "service", "delete", '{"name":"nope"}'],
                                 capture_output=True, timeout=60, check=False)
        assert missing.returncode == 252
        assert missing.stderr == b'Command failed: ubus call service delete {"name":"nope"} (Not found)\n'
    finally:
        _delete_everything(stack)


def _pgid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


def test_sigterm_stops_every_instance(tmp_path):
    stack = Stack(tmp_path).start()
    try:
        assert stack.call("set", {"name": "two", "instances": {
            "a": {"command": ["/bin/sleep", "1000"]},
            # ignores SIGTERM (SIGKILL after term_timeout); group_kill so that
            # its background child goes too and the test leaves nothing behind
            "b": {"command": ["/bin/sh", "-c", "trap '' TERM; sleep 1000 & wait"],
                  "term_timeout": 1, "group_kill": True}}})[0] == 0
        pids = []

        def running():
            _status, reply = stack.call("list", {"name": "two"})
            insts = (reply or {}).get("two", {}).get("instances", {})
            pids[:] = [i["pid"] for i in insts.values() if i.get("running")]
            return len(pids) == 2

        assert wait_for(running)
        group = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(p) == pids[1]]
        assert stack.stop_daemon() == 0
        assert not any(pid_alive(pid) for pid in pids + group)
    finally:
        stack.close()


def test_object_name_is_configurable(tmp_path):
    stack = Stack(tmp_path, object_name="pyprocd").start()
    try:
        code, out, _err = stack.ubus("list")
        # the service manager under its own name; `system` is the daemon's
        # read-only board/info object (taken by procd where procd runs)
        assert (code, out) == (0, "pyprocd\nsystem\n")
        assert stack.call("list", None) == (0, {})
    finally:
        stack.close()


def test_daemon_survives_bus_restart(tmp_path):
    """ubusd restarts: the object comes back, services and instances are kept."""
    stack = Stack(tmp_path).start()
    try:
        assert stack.call("set", {"name": "keep", "instances": {
            "i1": {"command": ["/bin/sleep", "1000"]}}})[0] == 0
        assert wait_for(lambda: stack.call("list", {"name": "keep"})[1]["keep"]["instances"]
                        ["i1"].get("running"))
        pid = stack.call("list", {"name": "keep"})[1]["keep"]["instances"]["i1"]["pid"]
        stack.stop_bus()
        stack.start_bus()
        assert wait_for(lambda: object_listed(stack.socket, "service"))
        assert stack.call("list", {"name": "keep"})[1]["keep"]["instances"]["i1"]["pid"] == pid
    finally:
        stack.close()


def test_second_daemon_with_a_taken_name_exits(stack):
    """`service` is taken (procd, or another pyprocd): start-up fails loudly, exit 1."""
    argv = [sys.executable, "-m", "pyprocd", "-s", stack.socket, "--syslog",
            str(stack.dir / "second.log"), "--state-file", "none", *stack.isolation()[2:]]
    done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    assert done.returncode == 1
    assert b"cannot register ubus object 'service'" in done.stderr
