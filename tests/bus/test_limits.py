"""Resource limits of the bus and the client under hostile or oversized traffic.

A client with many objects costs work linear in their number and no more than
a capped number of them; a client that floods while its listing is paused
costs bounded memory, freed when it goes; a message the bus would have to grow
past the 1 MiB limit, or a reply over it, is answered with a status instead of
costing anyone their connection; an object whose name was taken during a
reconnect is registered again as soon as the name is free; a client without a
bus says once that it is waiting.
"""

import gc
import os
import socket
import subprocess
import sys
import weakref

import pytest

from pyprocd.bus import broker as broker_module
from pyprocd.bus import frame as F
from pyprocd.bus.broker import MAX_OBJECTS_PER_CLIENT, Broker
from pyprocd.bus.client import UbusClient, UbusObject, encode_data
from pyprocd.loop import Loop
from tests.bus.test_behaviour import Bus, _connected
from tests.e2e.stack import wait_for


@pytest.fixture
def bus(tmp_path):
    b = Bus(str(tmp_path / "ubus.sock"))
    yield b
    b.close()


class RawPeer:
    """A client speaking raw frames to the bus in the test's loop, pipelining requests."""

    def __init__(self, bus, rcvbuf=None):
        self.bus = bus
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        before = set(bus.broker.clients)
        self.sock.connect(bus.path)
        self.sock.setblocking(False)
        bus.until(lambda: set(bus.broker.clients) - before)
        (self.id,) = set(bus.broker.clients) - before
        self.client = bus.broker.clients[self.id]
        self.reader = F.FrameReader()
        self.frames = []
        self.seq = 0

    def pump(self):
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        self.frames.extend(self.reader.feed(data))

    def requests(self, frames):
        """Send frames (all answered by a STATUS) and return the DATA/STATUS frames per request."""
        out = b"".join(frames)
        want = len(self.statuses()) + len(frames)
        for _ in range(6000):
            if out:
                try:
                    out = out[self.sock.send(out[:65536]):]
                except BlockingIOError:
                    pass
            self.pump()
            if not out and len(self.statuses()) >= want:
                return self.frames
            self.bus.loop.run_once(0.01)
        raise AssertionError("the bus did not answer")

    def statuses(self):
        return [f for f in self.frames if F.header(f)[1] == F.STATUS]

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def add_anonymous(self, count):
        """Add `count` anonymous objects; their ids in order."""
        self.frames = []
        self.requests([F.message(F.ADD_OBJECT, self.next_seq(), 0) for _ in range(count)])
        return [F.Attrs(F.body_of(f)).u32(F.A_OBJID) for f in self.frames
                if F.header(f)[1] == F.DATA]

    def listen(self, objid, pattern):
        data = F.bm_int32("object", objid) + F.bm_string("pattern", pattern)
        return F.message(F.INVOKE, self.next_seq(), 1, F.attr_u32(F.A_OBJID, 1)
                         + F.attr_str(F.A_METHOD, "register") + F.attr(F.A_DATA, data))

    def last_status(self):
        return F.Attrs(F.body_of(self.statuses()[-1])).u32(F.A_STATUS)

    def close(self):
        self.sock.close()


# -- many objects ------------------------------------------------------------------


def _counted_work(action, monkeypatch):
    """Python-level steps (trace events) plus object comparisons inside C list
    searches that `action` costs: a measure of work that does not depend on time."""
    steps = [0]

    def tracer(frame, event, arg):
        steps[0] += 1
        return tracer

    def counting_eq(self, other):
        steps[0] += 1
        return self is other

    monkeypatch.setattr(broker_module.Obj, "__eq__", counting_eq, raising=False)
    sys.settrace(tracer)
    try:
        action()
    finally:
        sys.settrace(None)
        monkeypatch.undo()
    return steps[0]


def _cleanup_work(bus, count, monkeypatch):
    """Work of the bus cleaning up after a client with `count` anonymous objects,
    every second one listening for an event pattern (as `ubus listen` does)."""
    peer = RawPeer(bus)
    ids = peer.add_anonymous(count)
    assert len(ids) == count
    peer.requests([peer.listen(objid, f"ev.{n}") for n, objid in enumerate(ids[::2])])
    assert peer.last_status() == F.OK
    peer.close()
    return _counted_work(lambda: bus.until(lambda: peer.id not in bus.broker.clients),
                         monkeypatch)


def test_cleanup_after_many_objects_is_linear(bus, monkeypatch):
    small = _cleanup_work(bus, 400, monkeypatch)
    large = _cleanup_work(bus, 1600, monkeypatch)
    assert not bus.broker.objects and not bus.broker.patterns
    # linear: about 4x the work for 4x the objects (quadratic would be about 16x)
    assert large < 6 * small, (small, large)


def test_objects_per_client_are_capped(bus):
    peer = RawPeer(bus)
    ids = peer.add_anonymous(MAX_OBJECTS_PER_CLIENT)
    assert len(ids) == MAX_OBJECTS_PER_CLIENT
    assert peer.add_anonymous(1) == []
    assert peer.last_status() == F.NO_MEMORY
    # the client keeps its connection and its objects; removing one makes room again
    peer.requests([F.message(F.REMOVE_OBJECT, peer.next_seq(), 0,
                             F.attr_u32(F.A_OBJID, ids[0]))])
    assert peer.last_status() == F.OK
    assert len(peer.add_anonymous(1)) == 1
    assert peer.add_anonymous(1) == []
    assert peer.last_status() == F.NO_MEMORY
    assert len(bus.broker.objects) == MAX_OBJECTS_PER_CLIENT
    # other clients are not limited by this one's objects
    other = _connected(bus, UbusObject("other", {"m": ({}, lambda inv, data: 0)}))
    assert other.connected
    peer.close()


def test_subscriptions_per_client_are_capped(bus):
    """Each subscription multiplies every notification of its target: capped like objects."""
    target = UbusObject("target", {"m": ({}, lambda inv, data: 0)})
    _connected(bus, target)
    peer = RawPeer(bus)
    (subscriber,) = peer.add_anonymous(1)
    body = F.attr_u32(F.A_OBJID, subscriber) + F.attr_u32(F.A_TARGET, target.id)
    peer.frames = []
    peer.requests([F.message(F.SUBSCRIBE, peer.next_seq(), 0, body)
                   for _ in range(MAX_OBJECTS_PER_CLIENT + 1)])
    statuses = [F.Attrs(F.body_of(f)).u32(F.A_STATUS) for f in peer.statuses()]
    assert statuses == [F.OK] * MAX_OBJECTS_PER_CLIENT + [F.NO_MEMORY]
    peer.requests([F.message(F.UNSUBSCRIBE, peer.next_seq(), 0, body)])
    assert peer.last_status() == F.OK
    peer.requests([F.message(F.SUBSCRIBE, peer.next_seq(), 0, body)] * 2)
    statuses = [F.Attrs(F.body_of(f)).u32(F.A_STATUS) for f in peer.statuses()[-2:]]
    assert statuses == [F.OK, F.NO_MEMORY]
    peer.close()
    bus.until(lambda: not bus.broker.objects[target.id].subscribers)


# -- flooding while a listing is paused ------------------------------------------------


def _logging_client(bus, *objects, **kwargs):
    """A connected client whose log lines are collected in the returned list."""
    logs = []
    client = UbusClient(bus.loop, bus.path, log=logs.append, **kwargs)
    bus.clients.append(client)
    for obj in objects:
        client.add_object(obj)
    client.start()
    bus.until(lambda: client.connected and all(o.id for o in objects))
    return client, logs


def _buffered(client):
    """Bytes the bus holds for one client: partial frame, parked messages, output queue."""
    return client.reader.pending() + sum(len(m) for m in client.inbox) + client.out_bytes


def test_flood_during_paused_lookup_stays_bounded_and_is_freed(bus):
    methods = {f"method{m:02d}": ({f"argument{a}": F.BM_STRING for a in range(8)},
                                  lambda inv, data: 0) for m in range(12)}
    _connected(bus, *[UbusObject(f"obj{n:04d}", methods) for n in range(400)])
    peer = RawPeer(bus, rcvbuf=4096)
    peer.sock.send(F.message(F.LOOKUP, 1, 0))  # a listing it never reads: the bus pauses it
    bus.until(lambda: peer.client.lookup is not None and peer.client.outq)
    ping = F.message(F.PING, 2, 0, F.attr(F.A_DATA, b"x" * 60000))
    sent = peak = 0
    rest = memoryview(b"")
    for _ in range(600):  # up to ~36 MB offered, whole frames only
        try:
            rest = rest or memoryview(ping)
            done = peer.sock.send(rest)
            sent, rest = sent + done, rest[done:]
        except BlockingIOError:
            pass
        bus.loop.run_once(0)
        peak = max(peak, _buffered(peer.client))
    assert peer.id in bus.broker.clients  # held, not dropped
    limit = 3 * F.MAX_MSG
    assert peak <= limit, f"the bus held {peak} bytes for one client after {sent} sent"
    gone = weakref.ref(peer.client)
    client = peer.client
    peer.close()
    bus.until(lambda: peer.id not in bus.broker.clients)
    assert _buffered(client) == 0
    del client
    peer.client = None
    gc.collect()
    assert gone() is None, "the bus keeps the disconnected client alive"


def test_a_held_client_can_finish_writing_a_whole_message(bus):
    """libubus blocks in write() without reading: a client whose replies pile up
    must still be able to send one whole (1 MiB) message, or it never reads again."""
    echo = UbusObject("echo", {"echo": ({}, lambda inv, data: inv.reply({"n": len(data["s"])}))})
    _connected(bus, echo)
    peer = RawPeer(bus, rcvbuf=4096)
    ping = F.message(F.PING, 1, 0, F.attr(F.A_DATA, b"p" * 30000))
    for _ in range(40):  # ~1.2 MB of echoes it does not read: the bus holds it
        peer.sock.setblocking(True)
        peer.sock.settimeout(30)
        peer.sock.sendall(ping)
        peer.sock.setblocking(False)
        bus.loop.run_once(0)
    bus.until(lambda: peer.client.out_bytes > broker_module.OUTQ_HOLD)
    # as large as the bus can forward with USER/GROUP added
    payload = _data_filling(F.MAX_MSG - 1024, lambda p: _invoke_frame(echo.id, "echo", p))
    big = memoryview(_invoke_frame(echo.id, "echo", payload, seq=9))
    for _ in range(3000):  # writes only, no read, as libubus does
        try:
            big = big[peer.sock.send(big[:65536]):]
        except BlockingIOError:
            pass
        if not big:
            break
        bus.loop.run_once(0.01)
    assert not big, "the bus stopped reading before the client could finish its message"
    # once it reads again, everything is answered in order
    peer.frames = []

    def answered():
        peer.pump()
        return any(F.header(f)[1:3] == (F.STATUS, 9) for f in peer.frames)

    bus.until(answered, 60)
    assert F.header(peer.frames[-2])[1:3] == (F.DATA, 9)
    assert F.Attrs(F.body_of(peer.frames[-1])).u32(F.A_STATUS) == F.OK
    peer.close()


# -- messages at the 1 MiB limit ------------------------------------------------------


def _invoke_frame(objid, method, data_payload, seq=1, peer=None, extra=b""):
    body = (F.attr_u32(F.A_OBJID, objid) + F.attr_str(F.A_METHOD, method) + extra
            + F.attr(F.A_DATA, data_payload))
    return F.message(F.INVOKE, seq, objid if peer is None else peer, body)


def _data_filling(limit, frame_of):
    """A DATA payload {"s": "x..."} making frame_of(payload)'s blob exactly `limit` bytes."""
    size = limit
    while True:
        payload = encode_data({"s": "x" * size})
        blob = len(frame_of(payload)) - 8
        if blob == limit:
            return payload
        size -= max(1, blob - limit) if blob > limit else -1


def test_call_the_bus_would_grow_past_the_limit_is_refused(bus):
    calls = []
    obj = UbusObject("big", {"m": ({}, lambda inv, data: calls.append(inv.method))})
    owner = _connected(bus, obj)
    owner_id, obj_id = owner.id, obj.id
    caller = _connected(bus)
    payload = _data_filling(F.MAX_MSG, lambda p: _invoke_frame(obj.id, "m", p))
    status, _ = bus.wait(lambda cb: caller.invoke(obj.id, "m", payload, cb, timeout=10))
    assert status == F.INVALID_ARGUMENT
    # the owner kept its connection and its object; small calls still work
    assert (owner.connected, owner.id, obj.id) == (True, owner_id, obj_id)
    assert bus.wait(lambda cb: caller.invoke(obj.id, "m", {}, cb, timeout=10))[0] == F.OK
    assert calls == ["m"]


def test_reply_or_notification_over_the_limit_gets_a_status(bus):
    huge = {"s": "x" * F.MAX_MSG}
    obj = UbusObject("big", {"m": ({}, lambda inv, data: inv.reply(huge)),
                             "small": ({}, lambda inv, data: inv.reply({"ok": 1}))})
    owner, logs = _logging_client(bus, obj)
    owner_id = owner.id
    caller = _connected(bus)
    status, replies = bus.wait(lambda cb: caller.invoke(obj.id, "m", {}, cb, timeout=10))
    assert (status, replies) == (F.UNKNOWN_ERROR, [])
    assert any("m" in line and "1048576" in line for line in logs), logs
    with pytest.raises(ValueError):
        owner.notify(obj, "event", huge)
    assert bus.wait(lambda cb: caller.invoke(obj.id, "small", {}, cb, timeout=10)) == \
        (F.OK, [{"ok": 1}])
    assert (owner.connected, owner.id) == (True, owner_id)


def test_notification_the_bus_would_grow_past_the_limit_is_refused(bus):
    got = []
    obj = UbusObject("source", {"m": ({}, lambda inv, data: 0)})
    owner = _connected(bus, obj)
    sub = UbusObject(catch_all=lambda inv, data: got.append(inv.method))
    watcher = _connected(bus, sub)
    watcher_id = watcher.id
    assert bus.wait(lambda cb: watcher.subscribe(sub, "source", cb)) == (F.OK,)

    def frame_of(payload):
        body = (F.attr_u32(F.A_OBJID, obj.id) + F.attr_str(F.A_METHOD, "big")
                + F.attr(F.A_DATA, payload))
        return F.message(F.NOTIFY, 1, obj.id, body)

    payload = _data_filling(F.MAX_MSG, frame_of)
    status = bus.wait(lambda cb: owner.notify(obj, "big", payload, no_reply=False,
                                              callback=cb))
    assert status == (F.INVALID_ARGUMENT,)
    assert bus.wait(lambda cb: owner.notify(obj, "small", {}, no_reply=False,
                                            callback=cb)) == (F.OK,)
    bus.until(lambda: got)
    assert got == ["small"] and (watcher.connected, watcher.id) == (True, watcher_id)


def test_client_answers_an_invoke_grown_past_the_limit(tmp_path):
    """ubusd adds USER/GROUP to a call of just under 1 MiB: the owner answers
    INVALID_ARGUMENT and keeps its connection instead of dropping it."""
    path = str(tmp_path / "fake.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(30)
    loop = Loop()
    loop.strict = True
    obj = UbusObject("svc", {"m": ({}, lambda inv, data: inv.reply({"ok": 1}))})
    client = UbusClient(loop, path, reconnect=False, log=lambda text: None)
    client.add_object(obj)
    client.start()
    conn, _ = server.accept()
    conn.settimeout(0)
    reader, frames = F.FrameReader(), []

    def next_frame():
        def arrived():
            try:
                frames.extend(reader.feed(conn.recv(1 << 20)))
            except BlockingIOError:
                pass
            return frames

        assert loop.run_until(arrived, 30), "the client said nothing"
        return frames.pop(0)

    def push(data):
        view = memoryview(data)
        for _ in range(3000):
            try:
                view = view[conn.send(view[:65536]):]
            except BlockingIOError:
                pass
            if not view:
                return
            loop.run_once(0.01)
        raise AssertionError("the client does not read")

    try:
        push(F.message(F.HELLO, 0, 0x4000))
        add = next_frame()
        assert F.header(add)[1] == F.ADD_OBJECT
        seq = F.header(add)[2]
        push(F.message(F.DATA, seq, 0, F.attr_u32(F.A_OBJID, 0x5000)))
        push(F.message(F.STATUS, seq, 0, F.attr_u32(F.A_STATUS, 0)))
        assert loop.run_until(lambda: obj.id == 0x5000, 30)
        grown = F.attr_str(F.A_USER, "root") + F.attr_str(F.A_GROUP, "root")
        payload = _data_filling(F.MAX_MSG, lambda p: _invoke_frame(0x5000, "m", p))
        big = _invoke_frame(0x5000, "m", payload, seq=7, peer=0x4001, extra=grown)
        assert len(big) - 8 > F.MAX_MSG
        push(big)
        answer = next_frame()
        assert F.header(answer)[1:] == (F.STATUS, 7, 0x4001)
        assert F.Attrs(F.body_of(answer)).u32(F.A_STATUS) == F.INVALID_ARGUMENT
        push(_invoke_frame(0x5000, "m", b"", seq=8, peer=0x4001, extra=grown))
        reply = next_frame()
        assert F.header(reply)[1:] == (F.DATA, 8, 0x4001)
        assert client.connected
    finally:
        conn.close()
        client.close()
        loop.close()
        server.close()


# -- a name taken during a reconnect ----------------------------------------------------


def test_object_taken_during_reconnect_is_registered_again(bus):
    """The name of an object that was on the bus is taken back once free; a name
    that was never the client's is not fought over."""
    holder = _connected(bus, UbusObject("other", {"m": ({}, lambda inv, data: 0)}),
                        reconnect=False)
    obj = UbusObject("service", {"m": ({}, lambda inv, data: inv.reply({"mine": 1}))})
    owner, logs = _logging_client(bus, obj, reconnect=True)
    other = UbusObject("other", {"m": ({}, lambda inv, data: 0)})
    assert bus.wait(lambda cb: owner.add_object(other, cb)) == (F.INVALID_ARGUMENT,)
    holder.close()
    bus.broker.close()
    # while the owner's next reconnect attempt is far enough away, another client
    # takes the name on the new bus
    bus.until(lambda: not owner.connected and owner._reconnect_delay >= 0.8)
    bus.broker = Broker(bus.loop, bus.path)
    squatter = _connected(bus, UbusObject("service", {"m": ({}, lambda inv, data: 0)}),
                          UbusObject("other", {"m": ({}, lambda inv, data: 0)}))
    bus.until(lambda: owner.connected and any("'service'" in line and "regist" in line
                                              for line in logs))
    assert obj.id is None
    squatter.close()
    bus.until(lambda: obj.id is not None)
    assert other.id is None and not [line for line in logs if "'other'" in line], logs
    caller = _connected(bus)
    assert bus.wait(lambda cb: caller.call("service", "m", {}, cb)) == (F.OK, [{"mine": 1}])


# -- no bus yet -----------------------------------------------------------------------


def test_waiting_for_the_bus_is_said_once(tmp_path):
    path = str(tmp_path / "ubus.sock")
    loop = Loop()
    loop.strict = True
    logs = []
    client = UbusClient(loop, path, reconnect=True, log=logs.append)
    broker = None
    try:
        client.start()
        # several attempts later (the delay doubles after each one)...
        assert loop.run_until(lambda: client._reconnect_delay >= 1.6, 30)
        waiting = [line for line in logs if path in line]
        assert len(waiting) == 1 and "waiting" in waiting[0], logs
        broker = Broker(loop, path)
        assert loop.run_until(lambda: client.connected, 30)
        assert [line for line in logs if path in line] == waiting
    finally:
        client.close()
        if broker is not None:
            broker.close()
        loop.close()


# -- the blocking wrapper ----------------------------------------------------------------


def test_blocking_call_with_unencodable_arguments_raises(tmp_path):
    path = str(tmp_path / "ubus.sock")
    bus = subprocess.Popen([sys.executable, "-m", "pyprocd", "bus", "-s", path],
                           stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: os.path.exists(path))
        script = (
            "import sys\n"
            "from pyprocd.bus.client import BlockingUbus, UbusClient, UbusObject\n"
            "with BlockingUbus(sys.argv[1], timeout=5) as bus:\n"
            "    owner = UbusClient(bus.loop, sys.argv[1], reconnect=False)\n"
            "    thing = UbusObject('thing', {'m': ({}, lambda inv, data: 0)})\n"
            "    owner.add_object(thing)\n"
            "    owner.start()\n"
            "    assert bus.loop.run_until(lambda: thing.id, 30)\n"
            "    try:\n"
            "        bus.call('thing', 'm', {'bad': object()})\n"
            "    except ValueError as e:\n"
            "        print('raised', type(e).__name__)\n"
        )
        try:
            done = subprocess.run([sys.executable, "-c", script, path], check=False,
                                  capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("BlockingUbus.call hangs on arguments it cannot encode")
        assert done.stdout.decode().startswith("raised"), done.stderr.decode()
    finally:
        bus.terminate()
        bus.wait(30)


# -- many peers, slow peers (what held up before must keep holding) -------------------


def _open_many(bus, count):
    """`count` connected sockets, opened in batches the listen backlog takes."""
    socks = []
    before = len(bus.broker.clients)
    while len(socks) < count:
        for _ in range(min(50, count - len(socks))):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(sock)
            sock.connect(bus.path)
            sock.setblocking(False)
        expected = before + len(socks)
        bus.until(lambda n=expected: len(bus.broker.clients) >= n)
    return socks


def test_thousands_of_idle_and_slow_peers_do_not_hold_up_a_call(bus):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4600  # both ends of 2,000 connections live in this process
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    socks = []
    try:
        echo = UbusObject("echo", {"echo": ({}, lambda inv, data: inv.reply(data))})
        _connected(bus, echo)
        caller = _connected(bus)
        socks = _open_many(bus, 2000)
        slow = socks[:300]
        frame = F.message(F.LOOKUP, 1, 0, F.attr_str(F.A_OBJPATH, "echo"))
        for step in range(len(frame) - 1):  # one byte per round, never a whole frame
            for sock in slow:
                sock.send(frame[step:step + 1])
            assert bus.wait(lambda cb, n=step: caller.invoke(echo.id, "echo", {"n": n}, cb,
                                                             timeout=30)) == (F.OK, [{"n": step}])
        held = sum(c.reader.pending() for c in bus.broker.clients.values())
        assert held == 300 * (len(frame) - 1)
    finally:
        for sock in socks:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    bus.until(lambda: len(bus.broker.clients) == 2)
