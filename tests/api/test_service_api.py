"""ServiceApi: bad input and core failures become a status and a log line, never a crash."""

from types import SimpleNamespace

import pytest

from pyprocd.api.service import Method, ServiceApi
from pyprocd.bus import frame as F
from pyprocd.bus.broker import Broker
from pyprocd.bus.client import UbusClient
from pyprocd.core.status import NotFound
from pyprocd.loop import Loop


class Manager:
    """The core's side, faked: typed operations that record their calls."""

    def __init__(self):
        self.calls = []
        self.notify = None
        self.services = {"svc": SimpleNamespace(autostart=True, data=None, instances={},
                                                triggers=None, validate=[])}
        self.state_changes = 0

    def delete(self, name, instance=None):
        self.calls.append(("delete", name, instance))
        raise NotFound(name)

    def revive(self, name=None, instance=None):
        self.calls.append(("revive", name, instance))
        return []

    def state_changed(self):
        self.state_changes += 1


def _boom(mgr, args):
    raise RuntimeError("core bug")


EXTRA = (Method("boom", {}, _boom, changes_state=False, listed=False),
         Method("unencodable", {}, lambda mgr, args: {"x": object()}, changes_state=False,
                listed=False))


@pytest.fixture
def world(tmp_path):
    loop = Loop()
    loop.strict = True
    path = str(tmp_path / "ubus.sock")
    broker = Broker(loop, path)
    logs = []
    owner = UbusClient(loop, path, reconnect=False, log=lambda text, *p: logs.append(text))
    manager = Manager()
    api = ServiceApi(owner, manager, "svc-test", log=lambda text, *p: logs.append(text),
                     extra=EXTRA)
    published = []
    api.publish(published.append)
    owner.start()
    caller = UbusClient(loop, path, reconnect=False)
    caller.start()
    assert loop.run_until(lambda: published and caller.connected, 30)

    def call(method, data):
        result = []
        caller.invoke(api.obj.id, method, data, lambda *a: result.append(a), timeout=30)
        assert loop.run_until(lambda: result, 30)
        return result[0]

    yield call, manager, api, logs, loop
    owner.close()
    caller.close()
    broker.close()
    loop.close()


def test_calls_reach_the_manager(world):
    call, manager, _api, logs, _loop = world
    assert call("list", {"verbose": True}) == (0, [{"svc": {}}])
    assert call("delete", {"name": "x", "ignored": 1, "instance": 5}) == (F.NOT_FOUND, [])
    assert manager.calls == [("delete", "x", None)]  # filtered by the policy, as procd's
    assert manager.state_changes == 1
    assert any("svc-test.delete" in line and "Not found" in line for line in logs)


def test_extension_methods_are_callable_but_not_listed(world):
    call, manager, api, _logs, _loop = world
    assert "revive" not in api.obj.methods
    assert call("revive", {"name": "x"}) == (0, [{"revived": []}])
    assert manager.calls[-1] == ("revive", "x", None)
    assert call("nosuchmethod", {}) == (F.METHOD_NOT_FOUND, [])


def test_core_exception_and_unencodable_reply(world):
    call, _manager, _api, logs, _loop = world
    assert call("boom", {}) == (F.UNKNOWN_ERROR, [])
    assert call("unencodable", {}) == (F.UNKNOWN_ERROR, [])
    assert any("internal error" in line for line in logs)
    assert any("cannot encode" in line for line in logs)
    assert call("list", {}) == (0, [{"svc": {}}])  # still serving


def test_bad_notification_is_logged(world):
    _call, manager, _api, logs, _loop = world
    manager.notify("instance.start", {"x": object()})
    assert any("cannot send notification" in line for line in logs)
