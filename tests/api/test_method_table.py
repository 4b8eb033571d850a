"""The `service` method table: one record per method, and what follows from it.

The state file is told after every method whose record says it changes
state; a method that changes what the state shows without saying so would
be lost in a daemon crash, so the table is checked against what each method
really does.
"""

import pytest

from pyprocd.api.service import METHODS, PROCD_METHODS, method_table
from tests.core.harness import Supervisor

SLEEP = ["/bin/sleep", "1000"]


class Recorder:
    """Stands in for the daemon's state file."""

    active = True  # recording: spawns are on record before they may run, as with the real one

    def __init__(self):
        self.changes = 0

    def changed(self):
        self.changes += 1

    def intended(self, service, instance, identity):
        pass

    def spawned(self, service, instance, pid, proc):
        pass

    def exited(self, service, instance, pid, status):
        pass


@pytest.fixture
def sup(tmp_path):
    recorder = Recorder()
    s = Supervisor(tmp_path, recorder=recorder)
    s.recorder = recorder
    s.call("set", {"name": "w", "data": {"k": "v"}, "instances": {
        "i": {"command": SLEEP, "watchdog": ["1", "1000"], "data": {"k": "v"}}}})
    assert s.inst("w", "i").running
    yield s
    s.close()


def test_watchdog_change_reaches_the_state_file(sup):
    before = sup.recorder.changes
    status, reply = sup.call("watchdog", {"name": "w", "instance": "i", "mode": 1, "timeout": 77})
    assert (status, reply["timeout"]) == (0, 77)
    assert sup.recorder.changes > before
    assert _watchdog_in_state(sup) == [1, 77, True]


def _watchdog_in_state(sup):
    for svc in sup.mgr.export_state()["services"]:
        for inst in svc["instances"]:
            if (svc["name"], inst["name"]) == ("w", "i"):
                return inst["watchdog"]
    return None


# A valid call of every method against the registry the fixture makes.
CALLS = {
    "set": {"name": "n", "instances": {"j": {"command": SLEEP}}},
    "add": {"name": "w", "instances": {"j": {"command": SLEEP}}},
    "list": {"verbose": True},
    "delete": {"name": "w", "instance": "i"},
    "signal": {"name": "w", "signal": 0},
    "update_start": {"name": "w"},
    "update_complete": {"name": "w"},
    "event": {"type": "x", "data": {}},
    "validate": {},
    "get_data": {},
    "set_data": {"name": "w", "data": {"k": "changed"}},
    "state": {"name": "w", "spawn": False},
    "watchdog": {"name": "w", "instance": "i", "mode": 2},
    "revive": {},
}


def test_every_method_has_a_call_here():
    assert set(CALLS) == {m.name for m in METHODS}


def _without_clock(value):
    """The state minus what moves with time alone."""
    if type(value) is dict:
        return {k: _without_clock(v) for k, v in value.items() if k not in ("runtime", "respawn_in")}
    if type(value) is list:
        return [_without_clock(v) for v in value]
    return value


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_changes_state_flag_is_what_the_method_does(sup, method):
    before = _without_clock(sup.mgr.export_state())
    told = sup.recorder.changes
    status, _reply = sup.call(method.name, CALLS[method.name])
    assert status == 0
    changed = _without_clock(sup.mgr.export_state()) != before
    if changed:
        assert method.changes_state, f"{method.name} changes the state but does not say so"
    if method.changes_state:
        assert sup.recorder.changes > told
    else:
        assert sup.recorder.changes == told


def test_arguments_are_filtered_by_the_policy_as_procd_does(sup):
    # wrong types count as missing, keys outside the policy are dropped
    assert sup.call("delete", {"name": 5}) == (4, None)
    assert sup.call("state", {"name": "w", "spawn": 1}) == (2, None)
    table = method_table()
    assert table["signal"].arguments({"name": "w", "signal": "9", "x": 1}) == {"name": "w"}


def test_the_listing_is_procds_and_extensions_are_not_listed():
    assert [name for name, _policy in PROCD_METHODS] == [
        "set", "add", "list", "delete", "signal", "update_start", "update_complete", "event",
        "validate", "get_data", "set_data", "state", "watchdog"]
    assert not method_table()["revive"].listed
