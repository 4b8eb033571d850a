"""Bad input over the method table: procd's status, the registry unchanged, nothing raises."""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyprocd.wire import blobmsg
from tests.core.harness import Supervisor

GOOD = {"name": "keep", "instances": {"i": {"command": ["/bin/sleep", "1000"]}}}


@pytest.fixture(scope="module")
def sup(tmp_path_factory):
    s = Supervisor(tmp_path_factory.mktemp("bad"))
    s.call("set", GOOD)
    yield s
    s.close()


def snapshot(sup):
    return copy.deepcopy(sup.call("list", {"verbose": True}))


# (method, request, procd's status) — the vectors show the first ones; the
# rest are wrong types, which procd's policies treat as missing.
BAD = [
    ("set", {}, 2), ("set", {"name": 5}, 2), ("set", {"name": None}, 2), ("set", {"name": ["x"]}, 2),
    ("add", {}, 2), ("add", {"name": True}, 2),
    ("delete", {}, 4), ("delete", {"name": 1}, 4), ("delete", {"name": "nope"}, 4),
    ("delete", {"name": "keep", "instance": "nope"}, 4),
    ("signal", {}, 4), ("signal", {"name": "nope"}, 4), ("signal", {"name": "keep", "instance": "zz"}, 4),
    ("state", {"name": "keep"}, 2), ("state", {"name": "keep", "spawn": 1}, 2),
    ("state", {"spawn": True}, 4), ("state", {"name": "nope", "spawn": False}, 4),
    ("update_start", {}, 2), ("update_start", {"name": "nope"}, 4),
    ("update_complete", {}, 2), ("update_complete", {"name": 3}, 2),
    ("event", {"type": "x"}, 2), ("event", {"data": {}}, 2), ("event", {"type": "x", "data": []}, 2),
    ("set_data", {"name": "keep"}, 2), ("set_data", {"data": {}}, 2),
    ("set_data", {"name": "nope", "data": {}}, 4), ("set_data", {"name": "keep", "instance": "z", "data": {}}, 4),
    ("watchdog", {}, 4), ("watchdog", {"name": "keep"}, 4), ("watchdog", {"name": "keep", "instance": "z"}, 4),
    ("nosuchmethod", {}, 3),
]


@pytest.mark.parametrize("method,request_,status", BAD)
def test_bad_requests_get_procd_status_and_change_nothing(sup, method, request_, status):
    before = snapshot(sup)
    assert sup.call(method, request_) == (status, None)
    assert snapshot(sup) == before


def test_non_table_message_is_invalid(sup):
    before = snapshot(sup)
    assert sup.call("set", ["name", "x"])[0] == 2
    assert snapshot(sup) == before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.text(alphabet=" +-0123456789", max_size=25),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
instance_keys = st.sampled_from([
    "command", "env", "data", "netdev", "file", "respawn", "nice", "limits", "watch", "error", "user",
    "group", "stdout", "stderr", "no_new_privs", "trace", "pidfile", "reload_signal", "term_timeout",
    "facility", "watchdog", "triggers", "jail", "seccomp", "capabilities", "group_kill",
])
instances = st.dictionaries(st.text(min_size=1, max_size=4),
                            st.dictionaries(instance_keys, json_values, max_size=6) | json_values,
                            max_size=3)
messages = st.fixed_dictionaries(
    {"name": st.sampled_from(["fz1", "fz2"]) | json_values},
    optional={"instances": instances | json_values, "triggers": json_values, "validate": json_values,
              "autostart": json_values, "data": json_values},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["set", "add"]), msg=messages)
def test_fuzzed_set_add_never_raise(sup, method, msg):
    # Commands that would run are replaced by a harmless one; everything else as generated.
    for inst in (msg.get("instances") or {}).values() if isinstance(msg.get("instances"), dict) else ():
        if isinstance(inst, dict) and isinstance(inst.get("command"), list) and inst["command"] and all(
                isinstance(a, str) for a in inst["command"]):
            inst["command"] = ["/bin/true"]
        if isinstance(inst, dict):
            inst.pop("pidfile", None)  # don't write files at random paths
            inst.pop("user", None)
    status = sup.call(method, msg)[0]
    assert status in (0, 2)
    for other in ("list", "get_data", "validate"):
        status, reply = sup.call(other, {"verbose": True} if other == "list" else {})
        assert status == 0
        blobmsg.encode_table(reply)  # what the bus sends: whatever was accepted can be shown
    sup.pump(0.001)
    sup.call("delete", {"name": "fz1"})
    sup.call("delete", {"name": "fz2"})
