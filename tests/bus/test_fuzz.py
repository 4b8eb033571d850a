"""Garbage on the bus: the broker and well-behaved clients never notice.

Bounded, seeded rounds of random/mutated/truncated/oversized frames from many
connections, with a well-behaved owner and caller on the same bus. After every
round the caller's call to the owner's object must still work. The loop is
strict: an exception anywhere would fail the test, and the broker's own guard
(which drops a client whose message raised) must never have fired.
"""

import random
import select
import socket

import pytest

from pyprocd.bus import frame as F
from pyprocd.bus.broker import Broker
from pyprocd.bus.client import UbusClient, UbusObject
from pyprocd.loop import Loop
from tests.bus import fuzzgen

ROUNDS = 30
CONNECTIONS = 6
MESSAGES = 25


@pytest.fixture
def bus(tmp_path):
    loop = Loop()
    loop.strict = True
    logs = []
    path = str(tmp_path / "ubus.sock")
    broker = Broker(loop, path, log=logs.append)
    owner = UbusClient(loop, path, reconnect=False, log=logs.append)
    caller = UbusClient(loop, path, reconnect=False, log=logs.append)
    echo = UbusObject("echo", {"echo": ({"k": F.BM_INT32}, lambda inv, data: inv.reply(data))})
    owner.add_object(echo)
    owner.start()
    caller.start()
    assert loop.run_until(lambda: echo.id and caller.connected, 30)
    yield loop, broker, owner, caller, echo, logs, path
    owner.close()
    caller.close()
    broker.close()
    loop.close()


def _call(loop, caller, echo, value):
    result = []
    caller.invoke(echo.id, "echo", {"k": value}, lambda *args: result.append(args), timeout=30)
    assert loop.run_until(lambda: result, 60)
    return result[0]


def _blast(sock, data):
    try:
        sock.send(data)
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        pass


def test_bus_survives_garbage(bus):
    loop, broker, owner, caller, echo, logs, path = bus
    rng = random.Random(1234)
    known = lambda: (echo.id, owner.id, caller.id)
    for round_no in range(ROUNDS):
        socks = []
        for _ in range(CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            sock.setblocking(False)
            socks.append(sock)
        for sock in socks:
            kind = rng.random()
            if kind < 0.1:
                _blast(sock, fuzzgen.garbage(rng))
            elif kind < 0.15:
                _blast(sock, fuzzgen.oversized(rng))
            else:
                for _ in range(MESSAGES):
                    _blast(sock, fuzzgen.random_message(rng, known()))
            loop.run_once(0)
        for _ in range(20):
            loop.run_once(0.001)
        if round_no % 2:
            for sock in socks:
                sock.close()  # mid-conversation disconnects
        assert _call(loop, caller, echo, round_no) == (0, [{"k": round_no}]), f"round {round_no}"
        for sock in socks:
            sock.close()
    for _ in range(20):
        loop.run_once(0.001)
    assert not [line for line in logs if "dropping client" in line], logs
    assert set(broker.clients) == {owner.id, caller.id}
    assert list(broker.paths) == [b"echo"]


def test_oversized_message_disconnects_only_the_sender(bus):
    loop, broker, _owner, caller, echo, _logs, path = bus
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    assert loop.run_until(lambda: len(broker.clients) == 3, 30)
    sock.sendall(F.message(F.PING, 1, 0)[:8] + (F.MAX_MSG + 8).to_bytes(4, "big"))
    assert loop.run_until(lambda: len(broker.clients) == 2, 30)
    assert _call(loop, caller, echo, 7) == (0, [{"k": 7}])
    sock.close()


def test_client_survives_garbage_from_the_bus(tmp_path):
    """A client fed random frames by a hostile 'bus' never raises; it reconnects."""
    loop = Loop()
    loop.strict = True
    path = str(tmp_path / "fake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    rng = random.Random(99)
    obj = UbusObject("x", {"m": ({}, lambda inv, data: 0)})
    client = UbusClient(loop, path, reconnect=True, log=lambda text: None)
    client.add_object(obj)
    client.start()
    def accept():
        assert loop.run_until(lambda: select.select([listener], [], [], 0)[0], 30)
        return listener.accept()

    try:
        for _round in range(20):
            conn, _ = accept()
            conn.sendall(F.message(F.HELLO, 0, 4242))
            loop.run_once(0.01)
            for _ in range(40):
                raw = fuzzgen.random_message(rng, (obj.id or 0, 4242))
                try:
                    conn.sendall(raw)
                except OSError:
                    break
                loop.run_once(0)
            conn.close()
            assert loop.run_until(lambda: client.sock is None or not client.connected, 30)
            # the client comes back by itself
        conn, _ = accept()
        conn.close()
    finally:
        client.close()
        listener.close()
        loop.close()
