"""`watch`: notifications of a watched ubus object become trigger events (over a real bus)."""

from pyprocd.bus.broker import Broker
from pyprocd.bus.client import UbusClient, UbusObject
from pyprocd.core.triggers import TriggerEngine
from pyprocd.daemon.settings import attach_bus
from pyprocd.loop import Loop

DEADLINE = 60


def test_notifications_of_a_watched_object_fire_triggers(tmp_path):
    loop = Loop()
    loop.strict = True
    sock = str(tmp_path / "ubus.sock")
    broker = Broker(loop, sock, log=lambda *a: None)
    out = tmp_path / "out"
    script = tmp_path / "record.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{out}"\n')
    script.chmod(0o755)

    daemon_side = UbusClient(loop, sock, log=lambda *a: None)
    daemon_side.start()
    engine = TriggerEngine(loop)
    listening = []
    attach_bus(daemon_side, engine, listening.append)
    engine.set_triggers("net", None, [
        ["interface.*", ["if", ["eq", "interface", "wan"],
                         ["run_script", str(script), "%interface%"]]]])
    # the watched object does not exist yet: procd subscribes once it appears
    engine.watch("network.interface")
    assert loop.run_until(lambda: listening == [0], DEADLINE)

    netifd = UbusClient(loop, sock, log=lambda *a: None)
    netifd.start()
    added = []
    obj = UbusObject("network.interface", {"status": ({}, lambda inv, data: 0)})
    netifd.add_object(obj, added.append)
    try:
        assert loop.run_until(lambda: added == [0] and obj.has_subscribers, DEADLINE)
        netifd.notify(obj, "interface.update", {"interface": "lan"})
        netifd.notify(obj, "interface.update", {"interface": "wan"})
        assert loop.run_until(lambda: out.exists() and engine.idle(), DEADLINE)
        assert out.read_text() == "wan\n"
    finally:
        netifd.close()
        daemon_side.close()
        broker.close()
        loop.close()


def test_watch_on_an_existing_object_subscribes_at_once(tmp_path):
    loop = Loop()
    loop.strict = True
    sock = str(tmp_path / "ubus.sock")
    broker = Broker(loop, sock, log=lambda *a: None)
    other = UbusClient(loop, sock, log=lambda *a: None)
    other.start()
    added = []
    obj = UbusObject("foo.bar", {"x": ({}, lambda inv, data: 0)})
    other.add_object(obj, added.append)
    daemon_side = UbusClient(loop, sock, log=lambda *a: None)
    daemon_side.start()
    engine = TriggerEngine(loop)
    seen = []
    engine.listeners.append(lambda type_, data: seen.append((type_, data)))
    try:
        assert loop.run_until(lambda: added == [0] and daemon_side.connected, DEADLINE)
        attach_bus(daemon_side, engine)
        engine.watch("foo.bar")
        assert loop.run_until(lambda: obj.has_subscribers, DEADLINE)
        other.notify(obj, "foo.happened", {"k": "v", "n": 1})
        assert loop.run_until(lambda: seen, DEADLINE)
        assert seen == [("foo.happened", {"k": "v", "n": 1})]
    finally:
        other.close()
        daemon_side.close()
        broker.close()
        loop.close()
