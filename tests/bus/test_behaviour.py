"""Client and bus behaviour the captures do not show: timeouts, deferred replies,
disconnects mid-call, reconnects, limits, object add/remove events, credentials."""

import os
import socket

import pytest

from pyprocd.bus import frame as F
from pyprocd.bus.broker import Broker
from pyprocd.bus.client import BlockingUbus, UbusClient, UbusObject
from pyprocd.loop import Loop
from tests.conftest import needs_root


class Bus:
    """A loop with a broker and helpers to run until a callback fired."""

    def __init__(self, path):
        self.path = path
        self.loop = Loop()
        self.loop.strict = True
        self.broker = Broker(self.loop, path)
        self.clients = []

    def client(self, **kwargs):
        client = UbusClient(self.loop, self.path, log=lambda text: None, **kwargs)
        self.clients.append(client)
        return client

    def wait(self, start, timeout=30):
        result = []
        start(lambda *args: result.append(args))
        assert self.loop.run_until(lambda: result, timeout), "no answer"
        return result[0]

    def until(self, condition, timeout=30):
        assert self.loop.run_until(condition, timeout)

    def restart_broker(self):
        self.broker.close()
        self.broker = Broker(self.loop, self.path)

    def close(self):
        for client in self.clients:
            client.close()
        self.broker.close()
        self.loop.close()


@pytest.fixture
def bus(tmp_path):
    b = Bus(str(tmp_path / "ubus.sock"))
    yield b
    b.close()


def _connected(bus, *objects, **kwargs):
    client = bus.client(**kwargs)
    for obj in objects:
        client.add_object(obj)
    client.start()
    bus.until(lambda: client.connected and all(o.id for o in objects))
    return client


def test_deferred_reply_and_status(bus):
    pending = []

    def later(inv, data):
        inv.defer()
        pending.append(inv)

    obj = UbusObject("slow", {"later": ({}, later), "fails": ({}, lambda inv, data: 9)})
    _connected(bus, obj)
    caller = _connected(bus)
    result = []
    caller.invoke(obj.id, "later", {}, lambda *a: result.append(a))
    bus.until(lambda: pending)
    assert not result
    pending[0].reply({"done": True})
    pending[0].complete(0)
    bus.until(lambda: result)
    assert result == [(0, [{"done": True}])]
    assert bus.wait(lambda cb: caller.invoke(obj.id, "fails", {}, cb)) == (9, [])
    assert bus.wait(lambda cb: caller.invoke(obj.id, "nope", {}, cb)) == (F.METHOD_NOT_FOUND, [])


def test_timeout_and_late_reply_is_ignored(bus):
    pending = []
    obj = UbusObject("hang", {"m": ({}, lambda inv, data: (inv.defer(), pending.append(inv)))})
    _connected(bus, obj)
    caller = _connected(bus)
    assert bus.wait(lambda cb: caller.invoke(obj.id, "m", {}, cb, timeout=0.2)) == (F.TIMEOUT, [])
    pending[0].complete(0)  # routed by the bus, dropped by the caller
    assert bus.wait(lambda cb: caller.lookup("hang", cb))[0] == 0  # connection still fine


def test_owner_dies_mid_call_caller_times_out(bus):
    obj = UbusObject("dying", {"m": ({}, lambda inv, data: inv.defer())})
    owner = _connected(bus, obj)
    caller = _connected(bus)
    result = []
    caller.invoke(obj.id, "m", {}, lambda *a: result.append(a), timeout=0.5)
    bus.until(lambda: bus.broker.objects.get(obj.id) is not None)
    bus.loop.run_once(0.05)
    owner.close()
    bus.until(lambda: result)
    assert result == [(F.TIMEOUT, [])]
    assert bus.wait(lambda cb: caller.lookup("dying", cb))[0] == F.NOT_FOUND


def test_caller_dies_mid_call_owner_unharmed(bus):
    pending = []
    obj = UbusObject("svc", {"m": ({}, lambda inv, data: (inv.defer(), pending.append(inv)))})
    owner = _connected(bus, obj)
    caller = _connected(bus)
    caller.invoke(obj.id, "m", {}, lambda *a: None)
    bus.until(lambda: pending)
    caller.close()
    bus.until(lambda: len(bus.broker.clients) == 1)
    pending[0].reply({"x": 1})
    pending[0].complete(0)
    other = _connected(bus)
    assert bus.wait(lambda cb: other.invoke(obj.id, "m", {}, cb, timeout=0.3))[0] == F.TIMEOUT
    assert owner.connected


def test_reconnect_registers_everything_again(bus):
    obj = UbusObject("keeper", {"ping": ({}, lambda inv, data: inv.reply({"pong": 1}))})
    events = []
    owner = _connected(bus, obj, reconnect=True)
    watcher = bus.client(reconnect=True)
    watcher.start()
    bus.until(lambda: watcher.connected)
    done = []
    watcher.register_event("demo.*", lambda name, data: events.append((name, data)), done.append)
    bus.until(lambda: done == [0])
    old_id = obj.id
    bus.restart_broker()
    bus.until(lambda: owner.connected and watcher.connected and obj.id and obj.id != old_id)
    caller = _connected(bus)
    assert bus.wait(lambda cb: caller.call("keeper", "ping", {}, cb)) == (0, [{"pong": 1}])
    # the event registration came back too (it may trail the object by a message or two)
    for _ in range(100):
        assert bus.wait(lambda cb: caller.send_event("demo.x", {"n": 1}, cb)) == (0,)
        if events:
            break
        bus.loop.run_once(0.05)
    assert events[0] == ("demo.x", {"n": 1})


def test_requests_wait_for_the_connection(bus):
    obj = UbusObject("late", {"m": ({}, lambda inv, data: 0)})
    _connected(bus, obj)
    client = bus.client(reconnect=True)
    result = []
    client.call("late", "m", {}, lambda *a: result.append(a))  # before start(): queued
    client.start()
    bus.until(lambda: result)
    assert result == [(0, [])]


def test_request_over_the_size_limit_is_refused(bus):
    obj = UbusObject("big", {"m": ({}, lambda inv, data: 0)})
    _connected(bus, obj)
    caller = _connected(bus)
    status, _ = bus.wait(lambda cb: caller.invoke(obj.id, "m", {"s": "x" * (F.MAX_MSG + 10)}, cb))
    assert status == F.INVALID_ARGUMENT
    assert bus.wait(lambda cb: caller.invoke(obj.id, "m", {"s": "x" * 1000}, cb))[0] == 0


def test_duplicate_path_and_object_events(bus):
    seen = []
    watcher = _connected(bus)
    for pattern in ("ubus.object.add", "ubus.object.remove"):
        done = []
        watcher.register_event(pattern, lambda name, data: seen.append((name, data["path"])),
                               done.append)
        bus.until(lambda d=done: d)
    first = UbusObject("dup", {"m": ({}, lambda inv, data: 0)})
    owner = _connected(bus, first)
    second = UbusObject("dup", {"m": ({}, lambda inv, data: 0)})
    assert bus.wait(lambda cb: owner.add_object(second, cb)) == (F.INVALID_ARGUMENT,)
    assert bus.wait(lambda cb: owner.remove_object(first, cb)) == (0,)
    bus.until(lambda: len(seen) == 2)
    assert seen == [("ubus.object.add", "dup"), ("ubus.object.remove", "dup")]


def test_lookup_patterns(bus):
    objs = [UbusObject(name, {"m": ({}, lambda inv, data: 0)}) for name in ("b.x", "a", "b.y")]
    client = _connected(bus, *objs)
    paths = lambda found: [o.path for o in found]
    status, found = bus.wait(lambda cb: client.lookup(None, cb))
    assert (status, paths(found)) == (0, ["a", "b.x", "b.y"])
    status, found = bus.wait(lambda cb: client.lookup("b.*", cb))
    assert (status, paths(found)) == (0, ["b.x", "b.y"])
    assert bus.wait(lambda cb: client.lookup("c*", cb))[0] == F.NOT_FOUND
    assert bus.wait(lambda cb: client.lookup("", cb))[0] == F.INVALID_ARGUMENT


def test_target_removed_unsubscribes(bus):
    removed = []
    target = UbusObject("target", {"m": ({}, lambda inv, data: 0)})
    owner = _connected(bus, target)
    sub = UbusObject(catch_all=lambda inv, data: 0, on_remove=removed.append)
    watcher = _connected(bus, sub)
    assert bus.wait(lambda cb: watcher.subscribe(sub, "target", cb)) == (0,)
    old_id = target.id
    owner.close()
    bus.until(lambda: removed)
    assert removed == [old_id]


def test_ping_is_echoed(bus):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(bus.path)
    sock.setblocking(False)
    reader = F.FrameReader()
    frames = []

    def pump():
        try:
            frames.extend(reader.feed(sock.recv(65536)))
        except BlockingIOError:
            pass
        return len(frames) >= 3

    ping = F.message(F.PING, 7, 42, F.attr_str(F.A_OBJPATH, "x"), version=1)
    sock.send(ping)
    bus.until(pump)
    assert frames[1] == bytes([1, F.DATA]) + ping[2:]
    assert frames[2] == F.message(F.STATUS, 7, 42, F.attr_u32(F.A_STATUS, 0))
    sock.close()


@needs_root
def test_user_and_group_come_from_peer_credentials():
    """A call from a process running as nobody carries USER/GROUP of that process."""
    import grp
    import pwd
    import shutil
    import tempfile

    nobody = pwd.getpwnam("nobody")
    public = tempfile.mkdtemp(prefix="pyprocd-cred-")  # reachable for nobody
    os.chmod(public, 0o755)
    bus = Bus(os.path.join(public, "ubus.sock"))
    try:
        seen = []
        obj = UbusObject("who", {"m": ({}, lambda inv, data: seen.append((inv.user, inv.group)))})
        _connected(bus, obj)
        request = F.message(F.INVOKE, 1, obj.id, F.attr_u32(F.A_OBJID, obj.id)
                            + F.attr_str(F.A_METHOD, "m") + F.attr(F.A_DATA, b""))
        pid = os.fork()
        if pid == 0:  # child: become nobody, then connect and call
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(bus.path)
                sock.sendall(request)
                sock.settimeout(30)
                reader, frames = F.FrameReader(), []
                while not any(F.header(f)[1] == F.STATUS for f in frames):
                    frames.extend(reader.feed(sock.recv(4096)))
                os._exit(0)
            except BaseException:  # noqa: BLE001 - report through the exit status
                os._exit(1)
        status = []

        def child_done():
            got, st = os.waitpid(pid, os.WNOHANG)
            if got:
                status.append(st)
            return bool(status)

        bus.until(child_done, 60)
        assert os.waitstatus_to_exitcode(status[0]) == 0
        assert seen == [("nobody", grp.getgrgid(nobody.pw_gid).gr_name)]
    finally:
        bus.close()
        shutil.rmtree(public, ignore_errors=True)


def test_blocking_wrapper_connection_refused(tmp_path):
    with pytest.raises(ConnectionError):
        BlockingUbus(str(tmp_path / "nothing.sock"))


def test_bus_out_of_file_descriptors_recovers(tmp_path):
    """accept() failing (EMFILE) pauses accepting; the bus serves again once fds are free."""
    import resource
    import signal
    import subprocess
    import sys

    from tests.e2e.stack import wait_for

    path = str(tmp_path / "ubus.sock")
    proc = subprocess.Popen([sys.executable, "-m", "pyprocd", "bus", "-s", path],
                            stderr=subprocess.DEVNULL)
    socks = []
    try:
        assert wait_for(lambda: os.path.exists(path))
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (24, 24))
        for _ in range(40):  # more than the bus can hold
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            socks.append(sock)
        for sock in socks:
            sock.close()
        socks.clear()

        def serves():
            try:
                with BlockingUbus(path, timeout=5) as bus:
                    return bus.lookup()[0] == 0
            except OSError:
                return False

        assert wait_for(serves, 60, 0.1)
        assert proc.poll() is None
    finally:
        for sock in socks:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_big_listing_is_paced_not_truncated(bus):
    """A listing larger than the 1 MiB queue reaches a slow reader complete (§5.5)."""
    methods = {f"method{m:02d}": ({f"argument{a}": F.BM_STRING for a in range(8)},
                                  lambda inv, data: 0) for m in range(12)}
    objs = [UbusObject(f"obj{n:04d}", methods) for n in range(700)]
    _connected(bus, *objs)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(bus.path)
    sock.setblocking(False)
    sock.sendall(F.message(F.LOOKUP, 1, 0))
    for _ in range(50):  # let the bus fill its queue while we do not read
        bus.loop.run_once(0.001)
    reader, frames = F.FrameReader(), []

    def readable():  # read as the bus writes: an event, not a poll
        try:
            frames.extend(reader.feed(sock.recv(65536)))
        except BlockingIOError:
            pass

    bus.loop.add_reader(sock.fileno(), readable)
    bus.until(lambda: frames and F.header(frames[-1])[1] == F.STATUS, 60)
    bus.loop.remove_reader(sock.fileno())
    assert F.header(frames[0])[1] == F.HELLO
    paths = [F.Attrs(F.body_of(f)).string(F.A_OBJPATH) for f in frames[1:-1]]
    assert paths == [o.name.encode() for o in objs]
    assert sum(len(f) for f in frames) > F.MAX_MSG  # more than one queue's worth
    sock.close()
