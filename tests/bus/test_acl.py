"""ACLs (`pyprocd bus -A DIR`): ubusd's rules for non-root clients (spec §5.6)."""

import grp
import json
import os
import pwd
import shutil
import socket
import tempfile

import pytest

from pyprocd.bus import frame as F
from pyprocd.bus.acl import Acl
from pyprocd.bus.broker import Broker
from pyprocd.bus.client import BlockingUbus, UbusClient, UbusObject
from pyprocd.loop import Loop
from tests.conftest import needs_root

pytestmark = needs_root  # ACL files count only when owned by root:root

NOBODY = pwd.getpwnam("nobody")


class FakeClient:
    def __init__(self, uid, gid, groups=()):
        self.uid, self.gid, self.groups = uid, gid, set(groups)


def write_acl(directory, name, doc, mode=0o644):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(doc, f)
    os.chmod(path, mode)
    return path


@pytest.fixture
def acl_dir(tmp_path):
    d = tmp_path / "acl.d"
    d.mkdir()
    return str(d)


def test_rules(acl_dir):
    write_acl(acl_dir, "nobody.json", {
        "user": "nobody",
        "access": {"service": {"methods": ["list"]}, "net.*": {"methods": ["*"]}},
        "publish": ["mine.*"], "listen": ["hotplug"], "send": ["custom.*"]})
    write_acl(acl_dir, "group.json", {"group": "daemon", "subscribe": ["service"]})
    write_acl(acl_dir, "nobody-wide-open.json", {"user": "nobody", "publish": ["*"]}, 0o666)
    write_acl(acl_dir, "anonymous.json", {"publish": ["*"]})
    acl = Acl(acl_dir)
    assert acl.load() and acl.sequence == 1
    nobody = FakeClient(NOBODY.pw_uid, NOBODY.pw_gid)
    daemon_member = FakeClient(12345, 54321, [grp.getgrnam("daemon").gr_gid])
    root = FakeClient(0, 0)
    assert acl.allowed(nobody, b"service", "access", b"list")
    assert not acl.allowed(nobody, b"service", "access", b"set")
    assert acl.allowed(nobody, b"net.lan", "access", b"anything")
    assert acl.allowed(nobody, b"mine.x", "publish")
    assert not acl.allowed(nobody, b"other", "publish")  # the group-writable file is ignored
    assert acl.allowed(nobody, b"hotplug", "listen")
    assert not acl.allowed(nobody, b"hotplug.net", "listen")
    assert acl.allowed(nobody, b"custom.event", "send")
    assert not acl.allowed(nobody, b"service", "subscribe")
    assert acl.allowed(daemon_member, b"service", "subscribe")  # supplementary group
    assert all(acl.allowed(root, b"x", kind) for kind in ("publish", "send", "listen"))


def _as_nobody(path, work):
    """Fork a child that becomes nobody and runs work(bus); (pid, fd its JSON result comes on)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            with BlockingUbus(path, timeout=30) as bus:
                result = work(bus)
            os.write(w, json.dumps(result).encode())
            code = 0
        except BaseException:  # noqa: BLE001 - shown by the parent through the exit code
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def test_bus_enforces_acls_for_non_root_clients():
    public = tempfile.mkdtemp(prefix="pyprocd-acl-")  # reachable for nobody
    os.chmod(public, 0o755)
    acl_dir = os.path.join(public, "acl.d")
    os.mkdir(acl_dir)
    write_acl(acl_dir, "nobody.json", {
        "user": "nobody", "access": {"svc": {"methods": ["list"]}}, "publish": ["nobody.*"]})
    loop = Loop()
    loop.strict = True
    path = os.path.join(public, "ubus.sock")
    acl = Acl(acl_dir)
    acl.load()
    broker = Broker(loop, path, acl=acl)
    owner = UbusClient(loop, path, reconnect=False)
    svc = UbusObject("svc", {"list": ({}, lambda inv, data: inv.reply({"ok": True})),
                             "set": ({"name": 3}, lambda inv, data: 0)})
    hidden = UbusObject("hidden", {"m": ({}, lambda inv, data: 0)})
    owner.add_object(svc)
    owner.add_object(hidden)
    owner.start()
    try:
        assert loop.run_until(lambda: svc.id and hidden.id, 30)

        def work(bus):
            status, objects = bus.lookup()
            listed = {o.path: [m for m, _args in o.methods()] for o in objects}
            allowed = bus.call("svc", "list")
            denied = bus.call("svc", "set", {"name": "x"})[0]
            mine = UbusObject("nobody.thing", {"m": ({}, lambda inv, data: 0)})
            theirs = UbusObject("root.thing", {"m": ({}, lambda inv, data: 0)})
            added = bus.wait(lambda cb: bus.client.add_object(mine, cb))[0]
            refused = bus.wait(lambda cb: bus.client.add_object(theirs, cb))[0]
            sent = bus.send_event("anything", {})
            return {"lookup": [status, listed], "allowed": list(allowed), "denied": denied,
                    "added": added, "refused": refused, "sent": sent}

        pid, result_fd = _as_nobody(path, work)
        status = []

        def child_done():
            got, st = os.waitpid(pid, os.WNOHANG)
            if got:
                status.append(st)
            return bool(status)

        assert loop.run_until(child_done, 60)
        assert os.waitstatus_to_exitcode(status[0]) == 0
        with os.fdopen(result_fd) as f:
            result = json.load(f)
        assert result["lookup"] == [0, {"svc": ["list"]}]  # `hidden` and `set` filtered out
        assert result["allowed"] == [0, [{"ok": True}]]
        assert result["denied"] == F.PERMISSION_DENIED
        assert (result["added"], result["refused"]) == (0, F.INVALID_ARGUMENT)
        assert result["sent"] == F.PERMISSION_DENIED
        # root is not restricted
        caller = UbusClient(loop, path, reconnect=False)
        caller.start()
        got = []
        caller.call("svc", "set", {"name": "x"}, lambda *a: got.append(a))
        assert loop.run_until(lambda: got, 30) and got[0] == (0, [])
        caller.close()
    finally:
        owner.close()
        broker.close()
        loop.close()
        shutil.rmtree(public, ignore_errors=True)


def test_reload_announces_the_sequence(acl_dir, tmp_path):
    loop = Loop()
    loop.strict = True
    path = str(tmp_path / "ubus.sock")
    acl = Acl(acl_dir)
    acl.load()
    broker = Broker(loop, path, acl=acl)
    listener = UbusClient(loop, path, reconnect=False)
    events = []
    done = []
    listener.register_event("ubus.acl.sequence", lambda name, data: events.append(data),
                            done.append)
    listener.start()
    try:
        assert loop.run_until(lambda: done, 30) and done == [0]
        write_acl(acl_dir, "a.json", {"user": "nobody", "publish": ["x"]})
        broker.reload_acl()
        assert loop.run_until(lambda: events, 30)
        assert events == [{"sequence": 1}]
    finally:
        listener.close()
        broker.close()
        loop.close()


def test_acl_query_lists_entries_for_own_objects(acl_dir, tmp_path):
    write_acl(acl_dir, "n.json", {"user": "nobody", "access": {
        "svc": {"methods": ["*"], "acl": {"level": 3}}, "other": {"methods": ["*"]}}})
    loop = Loop()
    path = str(tmp_path / "ubus.sock")
    acl = Acl(acl_dir)
    acl.load()
    broker = Broker(loop, path, acl=acl)
    client = UbusClient(loop, path, reconnect=False)
    svc = UbusObject("svc", {"m": ({}, lambda inv, data: 0)})
    client.add_object(svc)
    client.start()
    try:
        assert loop.run_until(lambda: svc.id, 30)
        got = []
        client.invoke(2, "query", {}, lambda *a: got.append(a))
        assert loop.run_until(lambda: got, 30)
        assert got[0] == (0, [{"seq": 1, "acl": [
            {"obj": "svc", "user": "nobody", "acl": {"level": 3}}]}])
    finally:
        client.close()
        broker.close()
        loop.close()


def test_without_acl_dir_everything_is_allowed(tmp_path):
    loop = Loop()
    path = str(tmp_path / "ubus.sock")
    broker = Broker(loop, path)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        assert loop.run_until(lambda: broker.clients, 30)
        client = next(iter(broker.clients.values()))
        assert broker._allowed(client, b"anything", "publish")
        sock.close()
    finally:
        broker.close()
        loop.close()
