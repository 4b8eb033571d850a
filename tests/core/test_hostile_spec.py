"""Hostile values in a `set`: refused or made safe when parsed, never a crash later.

Each test is one way a single submitted value used to break the daemon: a
timer the loop could not wait for, a non-string user that ran as root, a
value `list` could not encode, a signal that cannot be sent.
"""

import pytest

from pyprocd.core.spec import atoi, parse_instance
from pyprocd.wire import blobmsg
from tests.core.harness import Supervisor

SLEEP = ["/bin/sleep", "1000"]
# The longest timer procd's millisecond uloop timers (a C int) can hold.
MAX_TIMER_SECONDS = (2**31 - 1) // 1000


class Facts:
    def lookup_user(self, name):
        return (65534, 65534) if name == "nobody" else None

    def lookup_group(self, name):
        return 65534 if name == "nogroup" else None

    def ifindex(self, name):
        return 0

    def file_md5(self, path):
        return "0" * 32

    def have_ujail(self):
        return False


def parse(**raw):
    return parse_instance("i", raw, Facts())


@pytest.fixture
def sup(tmp_path):
    s = Supervisor(tmp_path)
    yield s
    s.close()


def listed(sup, name, instance="i"):
    status, reply = sup.call("list", {"name": name, "verbose": True})
    assert status == 0
    blobmsg.encode_table(reply)  # what the bus would send: it must encode
    return reply[name]["instances"][instance]


# -- timers longer than the loop can wait (about 24.8 days in milliseconds) ----------


def test_huge_respawn_timeout_is_capped_and_the_loop_keeps_running(sup):
    sup.call("set", {"name": "t", "instances": {"i": {
        "command": ["/bin/true"], "respawn": ["3600", "2147484", "5"]}}})
    assert sup.wait(lambda: sup.inst("t", "i").respawn_timer is not None)
    sup.pump(0.05)  # the loop now waits for the respawn timer: it must not raise
    assert listed(sup, "t")["respawn"]["timeout"] == MAX_TIMER_SECONDS


def test_huge_term_timeout_and_watchdog_are_capped(sup):
    sup.call("set", {"name": "t", "instances": {"i": {
        "command": SLEEP, "term_timeout": 2**31 - 1, "watchdog": ["1", "99999999999"]}}})
    out = listed(sup, "t")
    assert out["term_timeout"] == MAX_TIMER_SECONDS
    assert out["watchdog"] == {"mode": 1, "timeout": MAX_TIMER_SECONDS}
    sup.pump(0.05)  # watchdog timer armed: the loop must keep running


def test_watchdog_method_with_a_huge_timeout_is_capped(sup):
    sup.call("set", {"name": "w", "instances": {"i": {"command": SLEEP}}})
    status, reply = sup.call("watchdog", {"name": "w", "instance": "i", "mode": 1,
                                          "timeout": 2147484})
    assert status == 0
    assert reply["timeout"] == MAX_TIMER_SECONDS
    sup.pump(0.05)


def test_values_beyond_int64_still_list():
    spec = parse(command=SLEEP, respawn=["99999999999999999999999", "-99999999999999999999", "5"])
    assert spec.respawn_threshold == 2**31 - 1
    assert spec.respawn_timeout == 0
    assert spec.respawn_retry == 5


def test_atoi_saturates_like_a_32_bit_c_library():
    assert atoi("99999999999999999999") == 2**31 - 1
    assert atoi("-99999999999999999999") == -(2**31)
    assert atoi("  -12abc") == -12
    assert atoi("--5") == 0  # C: a second sign is not a digit
    assert atoi("+-5") == 0
    assert atoi("") == 0
    assert atoi("\u0663") == 0  # non-ASCII digits are not digits to C


# -- user / group of the wrong type: an error, never root ---------------------------------


@pytest.mark.parametrize("value", [65534, True, ["nobody"], {"n": "nobody"}, 1.5])
@pytest.mark.parametrize("key", ["user", "group"])
def test_non_string_user_or_group_is_an_instance_error(key, value):
    spec = parse(command=SLEEP, **{key: value})
    assert not spec.startable
    assert any(key in p for p in spec.problems)
    assert spec.uid == 0 and spec.gid == 0


def test_non_string_user_is_not_started_and_listed_with_an_error(sup):
    sup.call("set", {"name": "u", "instances": {"i": {"command": SLEEP, "user": 65534}}})
    assert not sup.inst("u", "i").running
    assert listed(sup, "u")["errors"] == ["invalid instance: 'user' must be a string"]


# -- what `list` could not encode later is refused now -----------------------------------------


def nested(levels):
    value = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


def test_data_too_deep_to_list_is_refused_at_set(sup):
    # Each request is as deep as a message may be; its `list` reply would be one deeper.
    for msg in ({"name": "d", "instances": {"i": {"command": SLEEP, "data": nested(61)}}},
                {"name": "d", "data": nested(63)},
                {"name": "d", "triggers": [nested(62)]}):
        blobmsg.decode_table(blobmsg.encode_table(msg))  # the request itself is valid
        assert sup.call("set", msg) == (2, None)
        assert sup.call("list", {"verbose": True}) == (0, {})


def test_set_data_too_deep_to_list_is_refused(sup):
    sup.call("set", {"name": "d", "instances": {"i": {"command": SLEEP}}})
    before = sup.call("list", {"verbose": True})
    assert sup.call("set_data", {"name": "d", "instance": "i", "data": nested(61)}) == (2, None)
    assert sup.call("set_data", {"name": "d", "data": nested(63)}) == (2, None)
    assert sup.call("list", {"verbose": True}) == before
    assert sup.call("set_data", {"name": "d", "instance": "i", "data": nested(60)}) == (0, None)
    listed(sup, "d")


def test_deepest_listable_data_is_accepted(sup):
    depth = 1
    while True:  # the deepest data a `set` may carry is the deepest `list` can show
        msg = {"name": "d", "instances": {"i": {"command": SLEEP, "data": nested(depth + 1)}}}
        if sup.call("set", msg)[0] != 0:
            break
        depth += 1
        listed(sup, "d")
        status, reply = sup.call("get_data", {})
        assert status == 0
        blobmsg.encode_table(reply)
    assert depth > 50


def test_validate_with_non_table_data_counts_as_no_rules(sup):
    # procd's policy: a value of the wrong type is a missing value.
    msg = {"name": "v", "validate": [{"package": "p", "type": "t", "data": "xy"}]}
    assert sup.call("set", msg) == (0, None)
    assert sup.call("validate", {}) == (0, {"p": {"t": {}}})
    status, reply = sup.call("list", {"verbose": True})
    assert status == 0
    assert reply["v"]["validate"] == [{"package": "p", "type": "t", "rules": {}}]


# -- reload_signal that cannot be sent ---------------------------------------------------------------


@pytest.mark.parametrize("sig", [999, -1, 65, 2**31 - 1])
def test_invalid_reload_signal_is_an_instance_error(sig):
    spec = parse(command=SLEEP, reload_signal=sig)
    assert not spec.startable
    assert spec.problems == (f"invalid instance: reload_signal {sig} is not a signal",)


def test_valid_reload_signal_is_kept():
    assert parse(command=SLEEP, reload_signal=1).reload_signal == 1
    assert parse(command=SLEEP, reload_signal=0).problems == ()


def test_invalid_reload_signal_never_lists_a_command_that_is_not_running(sup):
    sup.call("set", {"name": "s", "instances": {"i": {"command": SLEEP, "reload_signal": 999}}})
    assert not sup.inst("s", "i").running
    assert listed(sup, "s")["errors"] == ["invalid instance: reload_signal 999 is not a signal"]


# -- command of the wrong shape ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["/bin/sleep 100", {"0": "/bin/sleep"}, 5, True])
def test_command_that_is_not_an_array_is_an_instance_error(sup, command):
    sup.call("set", {"name": "c", "instances": {"i": {"command": command}}})
    assert not sup.inst("c", "i").running
    assert listed(sup, "c")["errors"] == ["invalid instance: 'command' must be an array of strings"]


def test_negative_respawn_values_mean_what_zero_means():
    # procd's atoi keeps -1: threshold -1 never counts a crash and retry -1 never
    # gives up, i.e. exactly what 0 means. pyprocd stores (and lists) that 0.
    spec = parse(command=SLEEP, respawn=["-1", "-1", "-1"])
    assert (spec.respawn_threshold, spec.respawn_timeout, spec.respawn_retry) == (0, 0, 0)
    assert spec.warnings


# -- names `list` cannot print as JSON -----------------------------------------------------------------------


def test_empty_service_name_is_refused(sup):
    assert sup.call("set", {"name": ""}) == (2, None)
    assert sup.call("add", {"name": "", "instances": {}}) == (2, None)
    assert sup.call("list", {}) == (0, {})


def test_empty_instance_name_is_refused(sup):
    assert sup.call("set", {"name": "e", "instances": {"": {"command": SLEEP}}}) == (2, None)
    assert sup.call("list", {}) == (0, {})
