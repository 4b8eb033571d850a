"""The daemon's life on the bus: waiting for it, and staying on it whatever the size
of what it is asked or answers."""

import json
import subprocess
import sys

import pytest

from pyprocd.bus import frame as F
from pyprocd.bus.client import BlockingUbus, encode_data
from tests.e2e.stack import Stack, object_listed, wait_for


def test_daemon_without_a_bus_says_once_that_it_waits(tmp_path):
    stack = Stack(tmp_path)
    argv = [sys.executable, "-m", "pyprocd", "-s", stack.socket, "--syslog", stack.syslog,
            *stack.isolation()]
    with open(stack.stderr_path, "ab") as stderr:
        stack.daemon = subprocess.Popen(argv, env=stack.env, stderr=stderr)
    try:
        assert wait_for(lambda: "waiting for the ubus socket" in stack.daemon_stderr()), \
            stack.diagnose("no word about the missing bus")
        stack.start_bus()
        assert wait_for(lambda: object_listed(stack.socket, "service")), \
            stack.diagnose("the daemon did not come onto the bus")
        lines = [line for line in stack.daemon_stderr().splitlines() if "waiting" in line]
        assert lines == [f"pyprocd: waiting for the ubus socket {stack.socket}"], lines
    finally:
        stack.close()


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path).start()
    try:
        yield s
    finally:
        s.close()


def _service_id(stack):
    with BlockingUbus(stack.socket, timeout=10) as bus:
        status, found = bus.lookup("service")
    assert status == 0, stack.diagnose(status)
    return found[0].id


def test_list_reply_over_the_limit_is_a_status_not_a_lost_daemon(stack):
    """Two services whose data together make `list` larger than 1 MiB."""
    for name in ("big1", "big2"):
        data = {"blob": "x" * 600_000}
        assert stack.call("set", {"name": name, "data": data}) == (0, None), \
            stack.diagnose(name)
    service = _service_id(stack)
    code, stdout, stderr = stack.ubus("call", "service", "list")
    assert (code, stdout) == (256 - F.UNKNOWN_ERROR, ""), stack.diagnose(stderr)
    assert stderr == "Command failed: ubus call service list (Unknown error)\n"
    assert any("service.list" in line and "1048576" in line
               for line in stack.daemon_stderr().splitlines()), stack.diagnose("no log line")
    # still the same registration: the daemon was never dropped by the bus
    assert _service_id(stack) == service
    assert "lost ubus" not in stack.daemon_stderr(), stack.diagnose("dropped")
    code, stdout, _ = stack.ubus("call", "service", "list", json.dumps({"name": "big1"}))
    assert code == 0 and len(stdout) > 600_000
    assert stack.call("delete", {"name": "big2"}) == (0, None)
    code, stdout, _ = stack.ubus("-S", "call", "service", "list")
    assert code == 0 and json.loads(stdout)["big1"]["data"]["blob"] == "x" * 600_000


def test_call_grown_past_the_limit_by_the_bus_leaves_the_daemon_on(stack):
    """A call of just under 1 MiB: the bus would add USER/GROUP and push it over."""
    service = _service_id(stack)
    with BlockingUbus(stack.socket, timeout=10) as bus:
        size = F.MAX_MSG - 64
        while True:
            data = {"name": "n", "data": {"pad": "x" * size}}
            body = (F.attr_u32(F.A_OBJID, service) + F.attr_str(F.A_METHOD, "set")
                    + F.attr(F.A_DATA, encode_data(data)))
            if 4 + len(body) <= F.MAX_MSG:
                break
            size -= 4 + len(body) - F.MAX_MSG
        status, _ = bus.invoke(service, "set", data)
    assert status == F.INVALID_ARGUMENT, stack.diagnose(status)
    assert _service_id(stack) == service
    assert "lost ubus" not in stack.daemon_stderr(), stack.diagnose("dropped")
    assert stack.call("list", {}) == (0, {}), stack.diagnose("list")
