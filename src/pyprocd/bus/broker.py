"""The host bus: a ubusd-compatible broker on pyprocd's event loop.

Everything a client can observe follows ubusd (spec ubus-wire.md §3-§5): random
ids >= 1024, byte-sorted lookups, INVOKE forwarding with USER/GROUP from
SO_PEERCRED and reply rewriting, events, subscriptions, object add/remove
events, the monitor, the 1 MiB message limit and the 1 MiB outgoing queue.

ACLs (§5.6) are enforced when an ACL directory is given (`pyprocd bus -A DIR`,
see acl.py). Deliberate differences (host use): without -A, every client may
do everything (ubusd always reads /usr/share/acl.d and, without files there,
denies all non-root clients, which makes an unprivileged test bus useless); the
monitor is allowed to root and to the user running the bus. File descriptor
passing (SCM_RIGHTS) is not forwarded.

Robustness: every message is handled inside a guard; anything unexpected from
one client drops that client only. No per-call state is kept, so a client that
disappears mid-call costs nothing (its callers time out, as with ubusd).

Limits beyond ubusd's, so that one client cannot starve or bloat the bus: at
most MAX_OBJECTS_PER_CLIENT objects (and as many event patterns and as many
subscriptions) per client, refused past that with NO_MEMORY; cleaning up after
a client costs time linear in what it owned; a client is *held* while its
listing is paused or its outgoing queue is over OUTQ_HOLD: its requests are
parked unprocessed, and once PARKED_MAX bytes are parked it is not read from
until its queue drains, so what the bus holds for it stays bounded (about
3 MiB) and goes with it. (Parking first, rather than not reading at once, lets
a libubus client that blocks in write() without reading finish writing one
whole message, so that it reads again: no deadlock.) A message the bus would
have to grow past 1 MiB (a call with USER/GROUP added) is refused with
INVALID_ARGUMENT instead of reaching a receiver that would hang up on it.
"""

import bisect
import os
import socket
import struct
import sys
from collections import deque

from pyprocd.bus import frame as F

SYSTEM_EVENT, SYSTEM_ACL, SYSTEM_MONITOR = 1, 2, 3
_SO_PEERCRED = getattr(socket, "SO_PEERCRED", 17)
_RECV_SIZE = 65536
ACCEPT_PAUSE = 0.5  # seconds without accepting after accept() failed (e.g. out of fds)
# Far more than any real client registers (rpcd, netifd: dozens to hundreds), few
# enough that one client's objects cost a few MB at most.
MAX_OBJECTS_PER_CLIENT = 4096
# Queued output above which the client's requests are parked, not handled (each
# would only add replies to a queue that ubusd's 1 MiB cap then drops)...
OUTQ_HOLD = F.MAX_MSG // 4
# ...and parked bytes at which the bus stops reading it (one whole message fits).
PARKED_MAX = F.MAX_MSG


def random_id():
    return struct.unpack(">I", os.urandom(4))[0]


class Client:
    __slots__ = (
        "__weakref__",
        "closed",
        "fd",
        "gid",
        "group",
        "groups",
        "id",
        "inbox",
        "lookup",
        "mon_seq",
        "monitor",
        "objects",
        "out_bytes",
        "outq",
        "parked",
        "patterns",
        "reader",
        "reading",
        "sock",
        "subscriptions",
        "uid",
        "user",
    )

    def __init__(self, sock, client_id, creds):
        self.sock = sock
        self.fd = sock.fileno()
        self.id = client_id
        self.uid, self.gid, self.user, self.group = creds
        self.groups = set()  # supplementary gids, read only when ACLs are enforced
        self.reader = F.FrameReader()
        self.outq = deque()  # pending outgoing chunks (bytes / memoryview), one per message
        self.out_bytes = 0
        self.objects = {}  # id -> Obj, in creation order
        self.patterns = 0  # event patterns registered on its objects
        self.reading = True  # its socket is watched for requests
        self.subscriptions = 0  # subscriptions held by its objects
        self.monitor = False
        self.mon_seq = 0
        self.lookup = None  # paused LOOKUP: (seq, peer, iterator)
        self.inbox = deque()  # its requests parked while it is held, in order
        self.parked = 0  # their bytes
        self.closed = False


class ObjType:
    __slots__ = ("id", "methods", "refs", "signature")

    def __init__(self, type_id, methods):
        self.id = type_id
        self.methods = methods  # [(name bytes, raw method entry)] in registration order
        self.signature = F.attr(F.A_SIGNATURE, b"".join(raw for _n, raw in methods))
        self.refs = 0


class Obj:
    __slots__ = ("id", "owner", "path", "patterns", "seq", "subscribers", "subscriptions",
                 "type")

    def __init__(self, obj_id, owner, obj_type):
        self.id = obj_id
        self.path = None
        self.type = obj_type
        self.owner = owner
        self.subscribers = []  # subscriber Obj, newest first
        self.subscriptions = []  # target Obj this object subscribed to
        self.patterns = 0  # event patterns registered on it
        self.seq = 0  # counter for broker-originated NOTIFY/UNSUBSCRIBE

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq


class Pattern:
    __slots__ = ("obj", "order", "partial", "text")

    def __init__(self, obj, text, order):
        self.partial = text.endswith(b"*")
        self.text = text[:-1] if self.partial else text
        self.obj = obj
        self.order = order

    def matches(self, name):
        return name.startswith(self.text) if self.partial else name == self.text


_names = {}  # (uid, gid) -> (user, group): no passwd/group file reads per connection


def peer_pid(sock):
    return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, _SO_PEERCRED, 12))[0]


def peer_credentials(sock):
    """(uid, gid, user, group) of the peer, or None when a name does not resolve."""
    import grp
    import pwd

    _pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, _SO_PEERCRED, 12))
    names = _names.get((uid, gid))
    if names is None:
        try:
            names = pwd.getpwuid(uid).pw_name.encode(), grp.getgrgid(gid).gr_name.encode()
        except KeyError:
            return None
        if len(_names) < 256:
            _names[(uid, gid)] = names
    return uid, gid, *names


def _log(text):
    print(f"pyprocd bus: {text}", file=sys.stderr, flush=True)


def _pattern_order(pattern):
    """ubusd keeps patterns in an AVL tree by text; equal texts in registration order."""
    return pattern.text, pattern.order


class Broker:
    """Serve ubus on a unix socket path, inside `loop`.

    `new_id(kind)` (kind: "client", "object", "type") and `credentials(sock)` can be
    replaced, e.g. by tests that replay captured traffic with the captured ids.
    """

    def __init__(self, loop, path, *, new_id=None, credentials=peer_credentials, log=_log,
                 acl=None, max_objects=MAX_OBJECTS_PER_CLIENT):
        self.loop = loop
        self.max_objects = max_objects  # per client; as many event patterns, subscriptions
        self.acl = acl  # pyprocd.bus.acl.Acl, or None: everything allowed
        self.path = path
        self.new_id = new_id
        self.credentials = credentials
        self.log = log
        self.clients = {}  # id -> Client
        self.objects = {}  # id -> Obj
        self.types = {}  # id -> ObjType
        self.paths = {}  # path bytes -> Obj
        self.patterns = []  # Pattern, kept sorted like ubusd's AVL tree
        self.monitors = []
        self.event_seq = 0
        self.pattern_order = 0
        self.own_uid = os.geteuid()
        self.listener = self._listen(path)
        loop.add_reader(self.listener.fileno(), self._accept)

    # -- sockets -----------------------------------------------------------------

    @staticmethod
    def _listen(path):
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, mode=0o755, exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o111)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        sock.listen(64)
        sock.setblocking(False)
        return sock

    def close(self):
        for client in list(self.clients.values()):
            self._disconnect(client)
        self.loop.remove_reader(self.listener.fileno())
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _alloc(self, kind, used):
        while True:
            value = self.new_id(kind) if self.new_id else random_id()
            if value >= 1024 and value not in used:
                return value

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and friends: keep serving the others
                self.log(f"accept failed: {e}")
                # The pending connection keeps the socket readable: pause accepting
                # for a moment instead of spinning on it.
                self.loop.remove_reader(self.listener.fileno())
                self.loop.call_later(ACCEPT_PAUSE, self._resume_accept)
                return
            sock.setblocking(False)
            try:
                creds = self.credentials(sock)
            except OSError:
                creds = None
            if creds is None:
                sock.close()  # like ubusd: unknown user/group, no HELLO
                continue
            client = Client(sock, self._alloc("client", self.clients), creds)
            if self.acl is not None and client.uid != 0:
                from pyprocd.bus.acl import supplementary_groups

                client.groups = supplementary_groups(peer_pid(sock))
            self.clients[client.id] = client
            self.loop.add_reader(client.fd, lambda c=client: self._readable(c))
            self._send(client, F.message(F.HELLO, 0, client.id))

    def _resume_accept(self):
        if self.listener.fileno() >= 0:
            self.loop.add_reader(self.listener.fileno(), self._accept)

    def _readable(self, client):
        try:
            data = client.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._disconnect(client)
            return
        try:
            messages = client.reader.feed(data)
        except F.FrameError:
            messages = None
        for raw in messages or ():
            if client.closed:
                return
            if client.inbox or self._held(client):
                client.inbox.append(raw)
                client.parked += len(raw)
            else:
                self._receive(client, raw)
        if messages is None and not client.closed:
            self._disconnect(client)
        elif client.parked >= PARKED_MAX:
            # Read no more until its queue drains (_release resumes): a client that
            # sends without reading must not make the bus hold what it sends.
            # A hang-up still shows: a queue is pending, so the writer is watched.
            client.reading = False
            self.loop.remove_reader(client.fd)

    @staticmethod
    def _held(client):
        """Its requests wait: a listing of its is paused, or its replies pile up unread."""
        return client.lookup is not None or client.out_bytes > OUTQ_HOLD

    def _release(self, client):
        """Handle the requests parked while the client was held, in order, until it
        is held again; read from it again when there is room to park."""
        while client.inbox and not client.closed and not self._held(client):
            raw = client.inbox.popleft()
            client.parked -= len(raw)
            self._receive(client, raw)
        if not client.reading and not client.closed and client.parked < PARKED_MAX:
            client.reading = True
            self.loop.add_reader(client.fd, lambda c=client: self._readable(c))

    def _receive(self, client, raw):
        try:
            self._monitor(client, raw, sent=False)
            self._handle(client, raw)
        except Exception as e:  # noqa: BLE001 - one client's garbage must never take the bus down
            self.log(f"dropping client {client.id:08x}: {type(e).__name__}: {e}")
            self._disconnect(client)

    def _send(self, client, raw):
        if client.closed:
            return
        if len(raw) - 8 > F.MAX_MSG:  # the receiver would hang up: never send it
            self.log(f"not sending a message of {len(raw) - 8} bytes (type {raw[1]}) to "
                     f"client {client.id:08x}: over the {F.MAX_MSG}-byte limit")
            return
        if raw[1] != F.MONITOR:
            self._monitor(client, raw, sent=True)
        if client.outq:
            if client.out_bytes + len(raw) > F.MAX_MSG:
                return  # ubusd drops the message, keeps the client
            client.outq.append(raw)
            client.out_bytes += len(raw)
            return
        try:
            sent = client.sock.send(raw)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.loop.call_soon(self._disconnect, client)
            return
        if sent < len(raw):
            rest = memoryview(raw)[sent:]
            client.outq.append(rest)
            client.out_bytes += len(rest)
            self.loop.add_writer(client.fd, lambda: self._writable(client))

    def _writable(self, client):
        while client.outq:
            chunk = client.outq[0]
            try:
                sent = client.sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._disconnect(client)
                return
            client.out_bytes -= sent
            if sent < len(chunk):
                client.outq[0] = memoryview(chunk)[sent:]
                break
            client.outq.popleft()
        if not client.outq:
            self.loop.remove_writer(client.fd)
            if client.lookup is not None:
                self._continue_lookup(client)
        self._release(client)

    def _disconnect(self, client):
        if client.closed:
            return
        client.closed = True
        # Everything held for it goes now, not when the last reference does.
        client.outq.clear()
        client.out_bytes = 0
        client.inbox.clear()
        client.parked = 0
        client.lookup = None
        client.reader = F.FrameReader()
        self.loop.remove_reader(client.fd)
        self.loop.remove_writer(client.fd)
        if client.monitor:
            self.monitors.remove(client)
        if client.patterns:  # in one pass, not one per object
            self.patterns = [p for p in self.patterns if p.obj.owner is not client]
            for obj in client.objects.values():
                obj.patterns = 0
        for obj in reversed(list(client.objects.values())):  # newest first, like ubusd
            self._destroy(obj)
        del self.clients[client.id]
        client.sock.close()

    # -- message dispatch ----------------------------------------------------------

    def _handle(self, client, raw):
        _version, msg_type, seq, peer = F.header(raw)
        attrs = F.Attrs(F.body_of(raw))
        handler = self._HANDLERS.get(msg_type)
        if handler is None:
            status = F.INVALID_COMMAND
        else:
            status = handler(self, client, raw, seq, peer, attrs)
        if status is not None:
            self._status(client, seq, peer, status)

    def _status(self, client, seq, peer, status):
        self._send(client, F.message(F.STATUS, seq, peer, F.attr_u32(F.A_STATUS, status)))

    def _ping(self, client, raw, seq, peer, attrs):
        self._send(client, raw[:1] + bytes((F.DATA,)) + raw[2:])
        return F.OK

    def _reply_forward(self, client, raw, seq, peer, attrs):
        """DATA/STATUS from an object owner: route to the caller, peer := object id."""
        objid = attrs.u32(F.A_OBJID)
        needed = F.A_DATA if raw[1] == F.DATA else F.A_STATUS
        if objid is None or needed not in attrs:
            return
        obj = self.objects.get(objid)
        caller = self.clients.get(peer)
        if obj is None or obj.owner is not client or caller is None:
            return
        self._send(caller, raw[:4] + struct.pack(">I", objid) + raw[8:])
        return

    # -- lookup ------------------------------------------------------------------

    def _lookup(self, client, raw, seq, peer, attrs):
        path = attrs.string(F.A_OBJPATH)
        if path is None:
            found = [self.paths[p] for p in sorted(self.paths)]
        elif not path:
            return F.INVALID_ARGUMENT
        elif path.endswith(b"*"):
            prefix = path[:-1]
            found = [self.paths[p] for p in sorted(self.paths) if p.startswith(prefix)]
            if not found:
                return F.NOT_FOUND
        else:
            obj = self.paths.get(path)
            if obj is None:
                return F.NOT_FOUND
            found = [obj]
        client.lookup = (seq, peer, iter(found))
        self._continue_lookup(client)
        return None

    def _continue_lookup(self, client):
        """Send lookup results while the socket takes them; pause when it backs up."""
        seq, peer, objects = client.lookup
        for obj in objects:
            if obj.type is None or self.objects.get(obj.id) is not obj:
                continue
            signature = self._visible_signature(client, obj)
            if signature is None:
                continue
            body = (F.attr_str(F.A_OBJPATH, obj.path) + F.attr_u32(F.A_OBJID, obj.id)
                    + F.attr_u32(F.A_OBJTYPE, obj.type.id) + signature)
            self._send(client, F.message(F.DATA, seq, peer, body))
            if client.outq:
                return  # resumed by _writable
        client.lookup = None  # what it sent meanwhile: see _release
        self._status(client, seq, peer, F.OK)

    def _visible_signature(self, client, obj):
        """The SIGNATURE this client may see; None hides the object (no method allowed)."""
        if self.acl is None or client.uid == 0 or not obj.type.methods:
            return obj.type.signature
        allowed = [raw for name, raw in obj.type.methods
                   if self.acl.allowed(client, obj.path, "access", name)]
        return F.attr(F.A_SIGNATURE, b"".join(allowed)) if allowed else None

    def _allowed(self, client, name, kind, method=None):
        return self.acl is None or self.acl.allowed(client, name, kind, method)

    def reload_acl(self):
        """SIGHUP: read the ACL files again; announce the new sequence like ubusd."""
        if self.acl is not None and self.acl.load():
            self._deliver(b"ubus.acl.sequence", F.bm_int32("sequence", self.acl.sequence), None)

    # -- objects -------------------------------------------------------------------

    def _new_type(self, signature):
        """A type from a SIGNATURE payload, or None if any method entry is invalid."""
        methods = []
        for _id, _ext, start, end, nxt in F.iter_attrs(signature):
            if not F.bm_check(signature, start - 4, end - start + 4, True):
                return None
            name = F.bm_element(signature, start - 4)[1]
            methods.append((name, bytes(signature[start - 4:nxt])))
        obj_type = ObjType(self._alloc("type", self.types), methods)
        self.types[obj_type.id] = obj_type
        return obj_type

    def _add_object(self, client, raw, seq, peer, attrs):
        if len(client.objects) >= self.max_objects:
            self.log(f"client {client.id:08x} (uid {client.uid}) has {len(client.objects)} "
                     "objects: refusing more")
            return F.NO_MEMORY
        obj_type, created = None, False
        if F.A_OBJTYPE in attrs:
            obj_type = self.types.get(attrs.u32(F.A_OBJTYPE))
        elif F.A_SIGNATURE in attrs:
            obj_type = self._new_type(attrs.payload(F.A_SIGNATURE))
            created = obj_type is not None
        obj = Obj(self._alloc("object", self.objects), client, obj_type)
        path = attrs.string(F.A_OBJPATH)
        taken = path is not None and path in self.paths
        if path is not None and (taken or not self._allowed(client, path, "publish")):
            if created:
                del self.types[obj_type.id]
            return F.INVALID_ARGUMENT
        self.objects[obj.id] = obj
        client.objects[obj.id] = obj
        if obj_type is not None:
            obj_type.refs += 1
        if path is not None:
            obj.path = path
            self.paths[path] = obj
            self._object_event(b"ubus.object.add", obj)
        body = F.attr_u32(F.A_OBJID, obj.id)
        if created:
            body += F.attr_u32(F.A_OBJTYPE, obj_type.id)
        self._send(client, F.message(F.DATA, seq, peer, body))
        return F.OK

    def _remove_object(self, client, raw, seq, peer, attrs):
        objid = attrs.u32(F.A_OBJID)
        if objid is None:
            return F.INVALID_ARGUMENT
        obj = self.objects.get(objid)
        if obj is None:
            return F.NOT_FOUND
        if obj.owner is not client:
            return F.PERMISSION_DENIED
        body = F.attr_u32(F.A_OBJID, obj.id)
        if obj.type is not None and obj.type.refs == 1:
            body += F.attr_u32(F.A_OBJTYPE, obj.type.id)
        self._send(client, F.message(F.DATA, seq, peer, body))
        self._destroy(obj)
        return F.OK

    def _destroy(self, obj):
        for target in list(obj.subscriptions):
            self._drop_subscription(obj, target)
        for subscriber in list(obj.subscribers):
            body = F.attr_u32(F.A_OBJID, subscriber.id) + F.attr_u32(F.A_TARGET, obj.id)
            self._send(subscriber.owner,
                       F.message(F.UNSUBSCRIBE, subscriber.next_seq(), 0, body))
            self._drop_subscription(subscriber, obj)
        if obj.patterns:
            self.patterns = [p for p in self.patterns if p.obj is not obj]
            obj.owner.patterns -= obj.patterns
            obj.patterns = 0
        if obj.path is not None:
            self._object_event(b"ubus.object.remove", obj)
            del self.paths[obj.path]
        del self.objects[obj.id]
        del obj.owner.objects[obj.id]
        if obj.type is not None:
            obj.type.refs -= 1
            if obj.type.refs <= 0:
                self.types.pop(obj.type.id, None)

    # -- subscriptions -------------------------------------------------------------

    def _set_active(self, target, active):
        body = F.attr_u32(F.A_OBJID, target.id) + F.attr_u8(F.A_ACTIVE, active)
        self._send(target.owner, F.message(F.NOTIFY, target.next_seq(), 0, body))

    def _drop_subscription(self, subscriber, target):
        target.subscribers.remove(subscriber)  # the first = most recent one
        subscriber.subscriptions.remove(target)
        subscriber.owner.subscriptions -= 1
        if not target.subscribers:
            self._set_active(target, 0)

    def _subscriber_and_target(self, client, attrs):
        objid, target_id = attrs.u32(F.A_OBJID), attrs.u32(F.A_TARGET)
        if objid is None or target_id is None:
            return F.INVALID_ARGUMENT, None, None
        subscriber = self.objects.get(objid)
        if subscriber is None:
            return F.NOT_FOUND, None, None
        if subscriber.owner is not client:
            return F.INVALID_ARGUMENT, None, None
        return None, subscriber, target_id

    def _subscribe(self, client, raw, seq, peer, attrs):
        error, subscriber, target_id = self._subscriber_and_target(client, attrs)
        if error is not None:
            return error
        target = self.objects.get(target_id)
        if target is None:
            return F.NOT_FOUND
        if target.owner is client:
            return F.INVALID_ARGUMENT
        if target.path is None and client.user != target.owner.user \
                and client.group != target.owner.group:
            return F.NOT_FOUND
        if target.path is not None and not self._allowed(client, target.path, "subscribe"):
            return F.NOT_FOUND
        if client.subscriptions >= self.max_objects:  # each one multiplies every NOTIFY
            self.log(f"client {client.id:08x} (uid {client.uid}) has {client.subscriptions} "
                     "subscriptions: refusing more")
            return F.NO_MEMORY
        client.subscriptions += 1
        target.subscribers.insert(0, subscriber)
        subscriber.subscriptions.insert(0, target)
        if len(target.subscribers) == 1:
            self._set_active(target, 1)
        return F.OK

    def _unsubscribe(self, client, raw, seq, peer, attrs):
        error, subscriber, target_id = self._subscriber_and_target(client, attrs)
        if error is not None:
            return error
        target = self.objects.get(target_id)
        if target is None or subscriber not in target.subscribers:
            return F.NOT_FOUND
        self._drop_subscription(subscriber, target)
        return F.OK

    def _notify(self, client, raw, seq, peer, attrs):
        objid, method = attrs.u32(F.A_OBJID), attrs.string(F.A_METHOD)
        if objid is None or method is None:
            return F.INVALID_ARGUMENT
        obj = self.objects.get(objid)
        if obj is None:
            return F.NOT_FOUND
        if obj.owner is not client:
            return F.PERMISSION_DENIED
        no_reply = bool(attrs.u8(F.A_NO_REPLY))
        head = F.attr_u8(F.A_NO_REPLY, 1) if no_reply else b""
        tail = (F.attr_str(F.A_METHOD, method) + F.attr_str(F.A_USER, client.user)
                + F.attr_str(F.A_GROUP, client.group) + self._data_attr(attrs))
        if obj.subscribers and self._grown_too_large(client, head + F.attr_u32(F.A_OBJID, 0)
                                                     + tail, "notification"):
            return F.INVALID_ARGUMENT
        if not no_reply:
            ids = b"".join(F.attr_u32(0, s.id) for s in obj.subscribers)
            body = (F.attr_u32(F.A_OBJID, obj.id) + F.attr(F.A_SUBSCRIBERS, ids)
                    + F.attr_u32(F.A_STATUS, F.OK))
            self._send(client, F.message(F.STATUS, seq, peer, body))
        for subscriber in list(obj.subscribers):
            body = head + F.attr_u32(F.A_OBJID, subscriber.id) + tail
            self._send(subscriber.owner, F.message(F.INVOKE, seq, client.id, body))
        return None

    @staticmethod
    def _data_attr(attrs):
        payload = attrs.payload(F.A_DATA)
        return b"" if payload is None else F.attr(F.A_DATA, payload)

    # -- invoke --------------------------------------------------------------------

    def _invoke(self, client, raw, seq, peer, attrs):
        objid, method = attrs.u32(F.A_OBJID), attrs.string(F.A_METHOD)
        if objid is None or method is None:
            return F.INVALID_ARGUMENT
        system = self._SYSTEM.get(objid)
        if system is not None:
            return system(self, client, seq, peer, method, attrs)
        obj = self.objects.get(objid)
        if obj is None:
            return F.NOT_FOUND
        if not self._allowed(client, obj.path, "access", method):
            return F.PERMISSION_DENIED
        body = (F.attr_u32(F.A_OBJID, obj.id) + F.attr_str(F.A_METHOD, method)
                + F.attr_str(F.A_USER, client.user) + F.attr_str(F.A_GROUP, client.group)
                + self._data_attr(attrs))
        if self._grown_too_large(client, body, "call"):
            return F.INVALID_ARGUMENT
        self._send(obj.owner, F.message(F.INVOKE, seq, client.id, body))
        return None

    def _grown_too_large(self, client, body, what):
        """A forwarded message that USER/GROUP took past the limit: refuse it, say so."""
        if 4 + len(body) <= F.MAX_MSG:
            return False
        self.log(f"refusing a {what} from client {client.id:08x}: with the caller's user "
                 f"and group it would be {4 + len(body)} bytes, over the {F.MAX_MSG}-byte limit")
        return True

    def _event_call(self, client, seq, peer, method, attrs):
        data = attrs.payload(F.A_DATA)
        if method == b"register":
            return self._register_pattern(client, data)
        if method == b"send":
            return self._send_event(client, data)
        return F.INVALID_COMMAND

    def _register_pattern(self, client, data):
        args = F.bm_parse(data, {b"object": F.BM_INT32, b"pattern": F.BM_STRING}) if data else None
        if not args or b"object" not in args or b"pattern" not in args:
            return F.INVALID_ARGUMENT
        objid = F.u32_at(data, args[b"object"][0])
        start, end = args[b"pattern"]
        pattern = bytes(data[start:end]).split(b"\0", 1)[0]
        obj = self.objects.get(objid)
        if objid < 1024:
            return F.PERMISSION_DENIED
        if obj is None:
            return F.NOT_FOUND
        if obj.owner is not client or not pattern:
            return F.PERMISSION_DENIED
        if not self._allowed(client, pattern[:-1] if pattern.endswith(b"*") else pattern,
                             "listen"):
            return F.PERMISSION_DENIED
        if client.patterns >= self.max_objects:
            self.log(f"client {client.id:08x} (uid {client.uid}) has {client.patterns} "
                     "event patterns: refusing more")
            return F.NO_MEMORY
        self.pattern_order += 1
        bisect.insort(self.patterns, Pattern(obj, pattern, self.pattern_order),
                      key=_pattern_order)
        obj.patterns += 1
        client.patterns += 1
        return F.OK

    def _send_event(self, client, data):
        args = F.bm_parse(data, {b"id": F.BM_STRING, b"data": F.BM_TABLE}) if data else None
        if not args or b"id" not in args or b"data" not in args:
            return F.INVALID_ARGUMENT
        start, end = args[b"id"]
        name = bytes(data[start:end]).split(b"\0", 1)[0]
        if name.startswith(b"ubus.") or not self._allowed(client, name, "send"):
            return F.PERMISSION_DENIED
        start, end = args[b"data"]
        self._deliver(name, bytes(data[start:end]), sender=client)
        return F.OK

    def _object_event(self, name, obj):
        self._deliver(name, F.bm_int32("id", obj.id) + F.bm_string("path", obj.path), None)

    def _deliver(self, name, payload, sender):
        delivered = set()
        for pattern in list(self.patterns):
            obj = pattern.obj
            if obj.id in delivered or obj.owner is sender or not pattern.matches(name):
                continue
            delivered.add(obj.id)
            self.event_seq = (self.event_seq + 1) & 0xFFFF
            body = (F.attr_u32(F.A_OBJID, obj.id) + F.attr_str(F.A_METHOD, name)
                    + F.attr(F.A_DATA, payload))
            self._send(obj.owner, F.message(F.INVOKE, self.event_seq, 0, body))

    def _acl_call(self, client, seq, peer, method, attrs):
        if method != b"query":
            return F.INVALID_COMMAND
        entries = []
        if self.acl is not None:
            own = [obj.path for obj in client.objects.values() if obj.path is not None]
            for entry in self.acl.query(client, own):
                table = F.bm_string("obj", entry.pattern)
                if entry.user is not None:
                    table += F.bm_string("user", entry.user)
                if entry.group is not None:
                    table += F.bm_string("group", entry.group)
                table += F.bm_attr(F.BM_TABLE, "acl", entry.acl_table)
                entries.append(F.bm_attr(F.BM_TABLE, "", table))
        sequence = self.acl.sequence if self.acl is not None else 0
        data = F.bm_int32("seq", sequence) + F.bm_attr(F.BM_ARRAY, "acl", b"".join(entries))
        body = F.attr_u32(F.A_OBJID, SYSTEM_ACL) + F.attr(F.A_DATA, data)
        self._send(client, F.message(F.DATA, seq, peer, body))
        return F.OK

    def _monitor_call(self, client, seq, peer, method, attrs):
        allowed = (client.uid == 0 and client.gid == 0) or client.uid == self.own_uid
        if not allowed:
            return F.PERMISSION_DENIED
        if method == b"add":
            if not client.monitor:
                client.monitor = True
                self.monitors.append(client)
            return F.OK
        if method == b"remove":
            if client.monitor:
                client.monitor = False
                self.monitors.remove(client)
            return F.OK
        return F.METHOD_NOT_FOUND

    def _monitor(self, client, raw, sent):
        if not self.monitors:
            return
        _version, msg_type, seq, peer = F.header(raw)
        body = (F.attr_u32(F.M_CLIENT, client.id) + F.attr_u32(F.M_PEER, peer)
                + F.attr_u32(F.M_SEQ, seq) + F.attr_u32(F.M_TYPE, msg_type)
                + F.attr_u8(F.M_SEND, 1 if sent else 0) + F.attr(F.M_DATA, raw[12:]))
        for monitor in list(self.monitors):
            monitor.mon_seq = (monitor.mon_seq + 1) & 0xFFFF
            self._send(monitor, F.message(F.MONITOR, monitor.mon_seq, 0, body))

    _HANDLERS = {  # noqa: RUF012 - read-only dispatch table
        F.STATUS: _reply_forward, F.DATA: _reply_forward, F.PING: _ping, F.LOOKUP: _lookup,
        F.INVOKE: _invoke, F.ADD_OBJECT: _add_object, F.REMOVE_OBJECT: _remove_object,
        F.SUBSCRIBE: _subscribe, F.UNSUBSCRIBE: _unsubscribe, F.NOTIFY: _notify,
    }
    _SYSTEM = {  # noqa: RUF012 - read-only dispatch table
        SYSTEM_EVENT: _event_call, SYSTEM_ACL: _acl_call, SYSTEM_MONITOR: _monitor_call}
