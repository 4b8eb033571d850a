"""pyprocd's deliberate deviations from procd (DESIGN.md "Defaults are procd's ... where procd is unsafe")."""

import pytest

from tests.core.harness import Supervisor


@pytest.fixture
def sup(tmp_path):
    s = Supervisor(tmp_path)
    yield s
    s.close()


def test_unknown_user_or_group_is_an_error_never_root(sup):
    # procd (vector unknown_user) runs this as root and lists no user.
    sup.call("set", {"name": "usr", "instances": {"i1": {
        "command": ["/bin/sleep", "1000"], "user": "no_such_user_xyz", "group": "no_such_group_xyz"}}})
    sup.pump(0.1)
    status, reply = sup.call("list", {"name": "usr"})
    assert status == 0
    assert reply == {"usr": {"instances": {"i1": {
        "running": False, "command": ["/bin/sleep", "1000"], "term_timeout": 5, "exit_code": 0,
        "errors": ["user 'no_such_user_xyz' not found: not starting (pyprocd never falls back to root)",
                   "group 'no_such_group_xyz' not found: not starting"]}}}}
    assert not [t for t, _ in sup.notifications if t == "instance.start"]
    # state spawn:true must not start it either
    sup.call("state", {"name": "usr", "spawn": True})
    assert not sup.inst("usr", "i1").running


def test_unknown_group_alone_blocks_too(sup):
    sup.call("set", {"name": "g", "instances": {"i1": {
        "command": ["/bin/sleep", "1000"], "user": "nobody", "group": "no_such_group_xyz"}}})
    assert not sup.inst("g", "i1").running


def test_invalid_instance_is_listed_and_fixing_it_starts_it(sup):
    sup.call("set", {"name": "n", "instances": {"i": {"command": ["/bin/sleep", "1000"], "nice": 50}}})
    out = sup.call("list", {"name": "n"})[1]["n"]["instances"]["i"]
    assert out["running"] is False
    assert out["errors"] == ["invalid instance: nice 50 outside -20..20"]
    sup.call("set", {"name": "n", "instances": {"i": {"command": ["/bin/sleep", "1000"], "nice": 5}}})
    assert sup.inst("n", "i").running


def test_respawn_and_watchdog_accept_integers_and_reject_other_types(sup):
    sup.call("set", {"name": "r", "instances": {
        "ints": {"command": ["/bin/sleep", "1000"], "respawn": [3600, 1, 5], "watchdog": [1, 20]},
        "bad": {"command": ["/bin/sleep", "1000"], "respawn": [True, {}]}}})
    reply = sup.call("list", {"name": "r"})[1]["r"]["instances"]
    assert reply["ints"]["respawn"] == {"threshold": 3600, "timeout": 1, "retry": 5}
    assert reply["ints"]["watchdog"] == {"mode": 1, "timeout": 20}
    assert reply["bad"]["running"] is False
    assert reply["bad"]["errors"] == ["invalid instance: 'respawn' values must be strings or integers"]
