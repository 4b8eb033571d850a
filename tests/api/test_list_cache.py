"""`list` keeps each instance's entry (and its blobmsg encoding) until it changes.

What a user relies on: every `list` shows the instance as it is now (a respawn's
new pid, an exit code, new data or a new command), byte for byte what encoding a
freshly built reply gives; and a `list` of many unchanged instances does not
rebuild or re-encode them (counted, not timed).
"""

import copy
import os
import signal

import pytest

from pyprocd.api import service
from pyprocd.wire import blobmsg
from tests.core.harness import Supervisor


@pytest.fixture
def sup(tmp_path):
    s = Supervisor(tmp_path)
    yield s
    s.close()


def entry(sup, name, inst="i"):
    status, reply = sup.call("list", {"name": name})
    assert status == 0
    return reply[name]["instances"][inst]


def plain(value):
    """The same reply built of plain dicts: what encoding it from scratch gives."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return copy.copy(value)


def test_every_change_shows_in_the_next_list(sup):
    sup.call("set", {"name": "c", "instances": {"i": {
        "command": ["/bin/sleep", "1000"], "respawn": ["3600", "0", "5"]}}})
    first = entry(sup, "c")
    assert first["running"] is True and first["pid"] == sup.inst("c", "i").pid
    assert entry(sup, "c") == first

    os.kill(first["pid"], signal.SIGKILL)  # respawned at once (timeout 0)
    assert sup.wait(lambda: sup.inst("c", "i").running and sup.inst("c", "i").pid != first["pid"])
    assert entry(sup, "c")["pid"] == sup.inst("c", "i").pid

    assert sup.call("set_data", {"name": "c", "instance": "i", "data": {"k": "v"}})[0] == 0
    assert entry(sup, "c")["data"] == {"k": "v"}

    sup.call("set", {"name": "c", "instances": {"i": {"command": ["/bin/sleep", "999"]}}})
    assert sup.wait(lambda: sup.inst("c", "i").running)
    assert entry(sup, "c")["command"] == ["/bin/sleep", "999"]
    assert "respawn" not in entry(sup, "c")

    inst = sup.inst("c", "i")
    sup.call("state", {"name": "c", "spawn": False})
    assert sup.wait(lambda: not inst.running)
    stopped = entry(sup, "c")
    assert stopped["running"] is False and "pid" not in stopped
    assert stopped["exit_code"] == inst.exit_code


def test_kept_entries_encode_as_a_fresh_reply_does(sup):
    sup.call("set", {"name": "e", "instances": {
        f"i{k}": {"command": ["/bin/sleep", "1000"], "env": {"K": str(k)}} for k in range(5)}})
    for _ in range(2):  # the second time from the kept encodings
        _, reply = sup.call("list", {})
        assert blobmsg.encode_table(reply) == blobmsg.encode_table(plain(reply))
    # the same entry at another depth or under another name is encoded for that place
    kept = reply["e"]["instances"]["i0"]
    assert blobmsg.encode_table({"x": kept}) == blobmsg.encode_table({"x": plain(kept)})


def test_unchanged_instances_are_neither_rebuilt_nor_reencoded(sup, monkeypatch):
    n = 100
    sup.call("set", {"name": "m", "instances": {
        f"i{k:03d}": {"command": ["/bin/sleep", "1000"]} for k in range(n)}})
    _, first = sup.call("list", {})
    blobmsg.encode_table(first)

    rebuilt, tables = [], []
    real_rows, real_container = service._dump_rows, blobmsg._put_container
    monkeypatch.setattr(service, "_dump_rows", lambda *a: rebuilt.append(1) or real_rows(*a))
    monkeypatch.setattr(blobmsg, "_put_container",
                        lambda *a: tables.append(1) or real_container(*a))

    _, again = sup.call("list", {})
    blobmsg.encode_table(again)
    assert rebuilt == []
    assert len(tables) <= 3  # the reply's own tables: service "m" and its "instances"

    victim = sup.inst("m", "i042")
    assert sup.call("signal", {"name": "m", "instance": "i042", "signal": int(signal.SIGKILL)})[0] == 0
    assert sup.wait(lambda: not victim.running)
    _, after = sup.call("list", {})
    assert len(rebuilt) == 1  # only the one that changed
    assert blobmsg.encode_table(after) == blobmsg.encode_table(plain(after))
    assert after["m"]["instances"]["i042"]["running"] is False
