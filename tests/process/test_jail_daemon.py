"""A jailed instance of the real daemon on a real bus: the jail's ubus socket is the
daemon's bus (the daemon's `socket` setting), its /dev/log the daemon's syslog."""

import os
import socket
import time

import pytest

from tests.e2e.stack import Stack, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="jails need root (CI runs as root)")


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind(s.syslog)
    s.start()
    yield s, log
    s.close()
    log.close()


def _program(pid):
    kids = []
    deadline = time.monotonic() + 10
    while not kids and time.monotonic() < deadline:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    return int(kids[0])


def test_jailed_instance_reaches_the_daemons_bus_and_log(stack):
    s, _log = stack
    instance = {"command": ["/bin/sleep", "100"],
                "jail": {"name": "e2e", "ubus": True, "log": True, "procfs": True}}
    assert s.call("set", {"name": "jailed", "instances": {"a": instance}})[0] == 0
    assert wait_for(lambda: s.call("list", {"name": "jailed"})[1]["jailed"]["instances"]["a"]
                    .get("running"))
    listed = s.call("list", {"name": "jailed"})[1]["jailed"]["instances"]["a"]
    assert listed["jail"]["ubus"] is True and listed["jail"]["name"] == "e2e"
    program = _program(listed["pid"])
    inside = f"/proc/{program}/root/var/run/ubus/ubus.sock"
    assert wait_for(lambda: os.path.exists(inside))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(inside)
    assert client.recv(4096), "the bus greets a client that connects from inside the jail"
    client.close()
    assert os.path.samefile(f"/proc/{program}/root/dev/log", s.syslog)
    assert s.call("delete", {"name": "jailed"})[0] == 0
    assert wait_for(lambda: not os.path.exists(f"/proc/{program}"))
