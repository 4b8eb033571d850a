"""Notifications of the daemon's `service` object as a subscriber sees them, vs procd's."""

import json

from pyprocd.bus.client import UbusClient, UbusObject
from pyprocd.loop import Loop
from tests.conftest import load_vectors
from tests.e2e.stack import Stack


def recorded():
    """The recorded `ubus subscribe service` output while vt2 was set and deleted."""
    session = next(s for s in load_vectors("ubus-sessions")["sessions"]
                   if s["name"] == "subscribe_service_notifications")
    commands = {c["client"]: c for c in session["commands"]}
    lines = commands["subscriber"]["stdout"].splitlines()
    notes = [json.loads(line) for line in lines]
    return ([next(iter(n.items())) for n in notes], json.loads(commands["setter"]["argv"][-1]),
            json.loads(commands["deleter"]["argv"][-1]))


def test_subscriber_sees_procds_notifications(tmp_path):
    expected, set_request, delete_request = recorded()
    stack = Stack(tmp_path).start()
    loop = Loop()
    client = UbusClient(loop, stack.socket, reconnect=False)
    got = []
    sub = UbusObject(catch_all=lambda inv, data: got.append((inv.method, data)))
    try:
        client.add_object(sub)
        client.start()
        done = []
        client.subscribe(sub, "service", done.append)
        assert loop.run_until(lambda: done, 60) and done == [0]
        assert stack.call("set", set_request)[0] == 0
        assert loop.run_until(lambda: len(got) >= 2, 60)
        assert stack.call("delete", delete_request)[0] == 0
        assert loop.run_until(lambda: len(got) >= 4, 60)
        assert got == expected
    finally:
        client.close()
        loop.close()
        stack.close()
