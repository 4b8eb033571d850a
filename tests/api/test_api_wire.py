"""The `service` object on the wire is procd's, byte for byte.

* Its ADD_OBJECT (path + signature) is the one procd sent in the capture.
* The captured `ubus call service ...` and `ubus subscribe service` sessions are
  replayed with OUR client and api object in procd's place, on our bus (fed the
  captured ids), behind a scripted manager that answers what procd answered.
  Everything the CLI clients received must be identical: the DATA and STATUS
  replies our object sent (forwarded verbatim by the bus), and our notifications
  as delivered to the subscriber.
"""


import pytest

from pyprocd.api.service import PROCD_METHODS, Method, ServiceApi
from pyprocd.bus import frame as F
from pyprocd.bus.broker import Broker
from pyprocd.bus.client import UbusClient, UbusObject
from pyprocd.core.status import CallError
from pyprocd.loop import Loop
from pyprocd.wire import blobmsg
from tests.bus import busreplay as R
from tests.conftest import load_vectors

PROCD_SESSIONS = ("call_service_list_empty", "call_service_set", "call_service_list_one",
                  "call_bad_args_missing_name", "subscribe_service_notifications")
SERVICE_ID, SERVICE_TYPE = 0x53E9C6ED, 0x06D631A3


@pytest.fixture(scope="module")
def capture():
    return load_vectors("ubus-sessions")


def test_signature_is_procds(capture):
    first = capture["sessions"][0]
    registered = [bytes.fromhex(m["hex"]) for m in first["messages"]
                  if m["dir"] == "procd->ubusd" and m["decoded"]["type_name"] == "ADD_OBJECT"]
    procd_body = next(raw[12:] for raw in registered if b"service\0" in raw)
    api = ServiceApi(client=None, manager=type("M", (), {})(), name="service")
    ours = F.attr_str(F.A_OBJPATH, "service") + F.attr(F.A_SIGNATURE, api.obj.signature())
    assert ours.hex() == procd_body.hex()
    assert [name for name, _ in PROCD_METHODS] == list(api.obj.methods)


def procd_script(sessions):
    """Per INVOKE procd got: (method, args, notes before STATUS, DATA replies, status, notes after)."""
    script = []
    for session in sessions:
        for m in session["messages"]:
            if m["client"] != "procd":
                continue
            raw = bytes.fromhex(m["hex"])
            _v, msg_type, seq, _peer = F.header(raw)
            attrs = F.Attrs(F.body_of(raw), F.UBUSD_POLICY)
            if m["dir"] == "ubusd->procd" and msg_type == F.INVOKE:
                script.append({"method": attrs.string(F.A_METHOD).decode(),
                               "args": blobmsg.decode_table(attrs.payload(F.A_DATA)),
                               "before": [], "after": [], "replies": [], "status": None})
            elif m["dir"] == "procd->ubusd" and script:
                entry = script[-1]
                if msg_type == F.NOTIFY:
                    note = (seq, attrs.string(F.A_METHOD).decode(),
                            blobmsg.decode_table(attrs.payload(F.A_DATA)))
                    (entry["after"] if entry["status"] is not None else entry["before"]).append(note)
                elif msg_type == F.DATA:
                    entry["replies"].append(blobmsg.decode_table(attrs.payload(F.A_DATA)))
                elif msg_type == F.STATUS:
                    entry["status"] = attrs.i32(F.A_STATUS)
    return script


def _scripted(method):
    def handler(manager, args):
        status, reply = manager.call(method, args)
        if status:
            raise CallError(status=status)
        return reply
    return handler


class ScriptedManager:
    """Answers like procd did in the capture; notifications with procd's seq numbers."""

    def __init__(self, loop, script):
        self.loop = loop
        self.script = list(script)
        self.client = None
        self.notify = None
        self.errors = []

    def _emit(self, notes):
        for seq, method, data in notes:
            self.client._seq = seq - 1  # procd had made other requests before
            self.notify(method, data)

    def call(self, method, msg):
        entry = self.script.pop(0)
        if (method, msg) != (entry["method"], entry["args"]):
            self.errors.append(f"got call {method} {msg}, want {entry['method']} {entry['args']}")
        self._emit(entry["before"])
        if entry["after"]:
            self.loop.call_soon(self._emit, entry["after"])
        assert len(entry["replies"]) <= 1
        return entry["status"], entry["replies"][0] if entry["replies"] else None


def test_procd_sessions_with_our_object(tmp_path, capture):
    sessions = [s for s in capture["sessions"] if s["name"] in PROCD_SESSIONS]
    recorded = R.recorded_ids(sessions)
    ids = {"client": [0xEF2DB964] + recorded["client"],
           "object": [SERVICE_ID] + recorded["object"], "type": [SERVICE_TYPE]}
    loop = Loop()
    loop.strict = True
    path = str(tmp_path / "ubus.sock")
    broker = Broker(loop, path, new_id=R.id_source(ids),
                    credentials=lambda sock: (0, 0, b"root", b"root"))
    client = UbusClient(loop, path, reconnect=False)
    manager = ScriptedManager(loop, procd_script(sessions))
    manager.client = client
    # Every method answered from the capture instead of the core's operations.
    api = ServiceApi(client, manager, extra=[
        Method(name, policy, _scripted(name), changes_state=False) for name, policy in PROCD_METHODS])
    published = []
    api.publish(published.append)
    client.start()
    assert loop.run_until(lambda: published, 30) and published == [0]
    assert api.obj.id == SERVICE_ID

    def pump(seconds):
        loop.run_once(seconds)

    conns = {}
    try:
        for session in sessions:
            last = R.last_message_index(session)
            for i, m in enumerate(session["messages"]):
                if m["client"] == "procd":
                    continue  # that is us now
                raw = bytes.fromhex(m["hex"])
                conn = m["conn"]
                where = f"{session['name']} message {m['i']} ({m['dir']})"
                if m["dir"].startswith("ubusd->"):
                    if conn not in conns:
                        conns[conn] = R.connect(path)
                    got = conns[conn].read_frame(pump)
                    assert got.hex() == raw.hex(), \
                        f"{where}\n got {R.describe(got)}\nwant {R.describe(raw)}"
                else:
                    conns[conn].send(raw)
                    pump(0)
                if last[conn] == i:
                    conns.pop(conn).close()
                    for _ in range(5):
                        pump(0.01)
        assert not manager.errors
        assert not manager.script
    finally:
        for fs in conns.values():
            fs.close()
        client.close()
        broker.close()
        loop.close()


def test_subscribers_flag_follows_the_bus(tmp_path):
    """NOTIFY {ACTIVE} from the bus tells the object whether anyone listens."""
    loop = Loop()
    loop.strict = True
    path = str(tmp_path / "ubus.sock")
    broker = Broker(loop, path)
    owner = UbusClient(loop, path, reconnect=False)
    watcher = UbusClient(loop, path, reconnect=False)
    changes = []
    obj = UbusObject("thing", {"x": ({}, lambda inv, data: 0)}, on_subscribe=changes.append)
    got = []
    sub = UbusObject(catch_all=lambda inv, data: got.append((inv.method, data)))
    try:
        owner.add_object(obj)
        watcher.add_object(sub)
        owner.start()
        watcher.start()
        assert loop.run_until(lambda: obj.id and sub.id, 30)
        done = []
        watcher.subscribe(sub, "thing", done.append)
        assert loop.run_until(lambda: done and changes, 30)
        assert done == [0] and changes == [True] and obj.has_subscribers
        owner.notify(obj, "hello", {"n": 1})
        assert loop.run_until(lambda: got, 30)
        assert got == [("hello", {"n": 1})]
        watcher.remove_object(sub)
        assert loop.run_until(lambda: len(changes) == 2, 30)
        assert changes == [True, False] and not obj.has_subscribers
    finally:
        owner.close()
        watcher.close()
        broker.close()
        loop.close()
