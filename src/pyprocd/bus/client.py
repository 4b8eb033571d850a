"""ubus client on pyprocd's event loop (libubus behaviour, spec ubus-wire.md §6).

Non-blocking unix socket, no threads: every operation takes a callback that
runs in the loop. What it does:

* requests (LOOKUP, INVOKE with a timeout, ADD/REMOVE_OBJECT, SUBSCRIBE, events)
  matched to their DATA/STATUS replies by (seq, peer);
* local objects with method signatures; incoming calls become `Invocation`s that
  answer at once (the handler's return value) or later (`defer()` then
  `complete()`); NOTIFY to subscribers; subscriber and event-listener objects;
* reconnect: when the bus goes away, calls in flight fail with CONNECTION_FAILED,
  the client reconnects with a growing delay (saying once that it waits for the
  socket) and registers again every object, event pattern and subscription
  (subscriptions by path, since ids change); requests made while disconnected
  wait for the new connection. A named object whose name another client took
  meanwhile is registered again, with a growing delay, until the name is free;
* the 1 MiB message limit never costs the connection: a request, reply or
  notification over it is refused locally (a status, or ValueError for what has
  no status), and a call that ubusd grew past it by adding USER/GROUP is
  answered INVALID_ARGUMENT.

`BlockingUbus` at the end wraps it for scripts, the CLI and tests.
"""

import _socket as socket  # C module: `socket` would import enum (~0.8 MB for the daemon's life)
import errno
import sys

from pyprocd.bus import frame as F

RECONNECT_MIN = 0.1
RECONNECT_MAX = 2.0
REREGISTER_MIN = 0.5  # seconds before registering a taken name again, doubling...
REREGISTER_MAX = 5.0  # ...up to this
# ubusd forwards a call with the caller's USER and GROUP added, which can take a
# call of just under 1 MiB past the limit: read such frames (and refuse them)
# instead of taking the stream for garbage.
BUS_GROWTH = 65536

# blobmsg type numbers for method signatures
ARRAY, TABLE, STRING, INT64, INT32, INT16, BOOL, DOUBLE, UNSPEC = 1, 2, 3, 4, 5, 6, 7, 8, 0


def encode_data(value):
    """Python dict (or already encoded bytes) -> payload of a UBUS_ATTR_DATA."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    from pyprocd.wire import blobmsg

    return blobmsg.encode_table(value)


def decode_data(payload):
    from pyprocd.wire import blobmsg

    return blobmsg.decode_table(payload)


def signature_of(methods):
    """SIGNATURE payload: one blobmsg table per method, one INT32 (type) per argument."""
    out = []
    for name, policy in methods:
        args = b"".join(F.bm_int32(arg, arg_type) for arg, arg_type in policy.items())
        out.append(F.bm_attr(F.BM_TABLE, name, args))
    return b"".join(out)


def _log(text):
    print(f"pyprocd ubus: {text}", file=sys.stderr, flush=True)


class MessageTooLarge(F.FrameError):
    """A message that would exceed ubus's 1 MiB limit (a ValueError)."""


def _frame(msg_type, seq, peer, body, what):
    """A whole message, or MessageTooLarge: sending it would cost the connection."""
    if 4 + len(body) > F.MAX_MSG:
        raise MessageTooLarge(f"{what} of {4 + len(body)} bytes exceeds the ubus message "
                              f"limit of {F.MAX_MSG} bytes")
    return F.message(msg_type, seq, peer, body)


class ObjectInfo:
    """One LOOKUP result."""

    __slots__ = ("id", "path", "signature", "type_id")

    def __init__(self, path, obj_id, type_id, signature):
        self.path, self.id, self.type_id, self.signature = path, obj_id, type_id, signature

    def methods(self):
        """[(method name, {argument: blobmsg type})] in registration order."""
        from pyprocd.wire import blobmsg

        result = []
        for _id, ext, start, end, nxt in F.iter_attrs(self.signature or b""):
            if not ext:
                continue
            bm_type, name, vstart, vend = F.bm_element(self.signature, start - 4)
            table = blobmsg.decode_table(self.signature[vstart:vend]) if bm_type == F.BM_TABLE else {}
            result.append((name.decode("utf-8", "replace"), table))
        return result


class UbusObject:
    """A local object. methods: {name: (policy {arg: type}, handler)}.

    handler(invocation, data_dict) returns a status (None = OK), or calls
    invocation.defer() and answers later with invocation.complete(status).
    An object with `catch_all` set (event listeners, subscribers) gets every
    call on that handler whatever the method name; it has no signature.
    """

    def __init__(self, name=None, methods=None, *, catch_all=None, on_subscribe=None,
                 on_remove=None, raw_data=False, fallback=None):
        self.name = name
        # fallback(invocation, data): methods that are callable but not in the signature
        self.fallback = fallback
        self.raw_data = raw_data  # handlers get the DATA payload bytes, not a dict
        self.methods = dict(methods or {})
        self.catch_all = catch_all
        self.on_subscribe = on_subscribe  # (active: bool) when subscribers come and go
        self.on_remove = on_remove  # (target_id) when a subscribed target vanished
        self.id = None
        self.type_id = None
        self.has_subscribers = False
        self.held_name = False  # was on the bus under its name at least once

    def signature(self):
        return signature_of((name, policy) for name, (policy, _h) in self.methods.items())


class Invocation:
    """An incoming method call on one of our objects."""

    __slots__ = (
        "_conn",
        "caller",
        "client",
        "deferred",
        "done",
        "group",
        "method",
        "no_reply",
        "obj",
        "seq",
        "user",
    )

    def __init__(self, client, obj, method, seq, caller, user, group, no_reply):
        self.client, self.obj, self.method = client, obj, method
        self.seq, self.caller, self.user, self.group = seq, caller, user, group
        self.no_reply = no_reply
        self.deferred = False
        self.done = False
        self._conn = client._conn_no

    def _still_valid(self):
        return not self.done and self._conn == self.client._conn_no and self.client.connected

    def reply(self, data):
        """Send one DATA reply (a dict, or encoded blobmsg bytes).

        ValueError (MessageTooLarge) for a reply over the 1 MiB limit: the caller
        then answers with a status instead.
        """
        if self.no_reply or not self._still_valid():
            return
        body = F.attr_u32(F.A_OBJID, self.obj.id) + F.attr(F.A_DATA, encode_data(data))
        self.client._write(_frame(F.DATA, self.seq, self.caller, body, "reply"))

    def defer(self):
        self.deferred = True

    def complete(self, status=F.OK):
        """Final STATUS (for deferred calls, or implicitly for immediate ones)."""
        if self.no_reply or not self._still_valid():
            self.done = True
            return
        self.done = True
        body = F.attr_u32(F.A_STATUS, status) + F.attr_u32(F.A_OBJID, self.obj.id)
        self.client._write(F.message(F.STATUS, self.seq, self.caller, body))


class Request:
    __slots__ = ("on_data", "on_done", "peer", "raw", "sent_on", "seq", "status", "timer")

    def __init__(self, seq, peer, raw, on_data, on_done):
        self.seq, self.peer, self.raw = seq, peer, raw
        self.on_data, self.on_done = on_data, on_done
        self.timer = None
        self.status = None
        self.sent_on = None  # connection number it went out on


class UbusClient:
    def __init__(self, loop, path=F.DEFAULT_SOCKET, *, reconnect=True, log=_log,
                 on_connect=None, on_disconnect=None):
        self.loop = loop
        self.path = path
        self.reconnect = reconnect
        self.log = log
        self.on_connect = on_connect  # () after every HELLO (after re-registration started)
        self.on_disconnect = on_disconnect
        self.on_monitor = None  # (body) for MONITOR messages, see `ubus monitor`
        self.id = None
        self.connected = False  # HELLO received
        self.closed = False
        self.sock = None
        self._conn_no = 0
        self._reader = None
        self._out = bytearray()
        self._seq = 0
        self._pending = {}  # (seq, peer) -> Request
        self._backlog = []  # Requests waiting for a connection
        self._objects = {}  # id -> UbusObject (current connection)
        self._registered = []  # every UbusObject we keep on the bus
        self._patterns = []  # (pattern, listener UbusObject)
        self._subscriptions = []  # (subscriber UbusObject, target path)
        self._waiting = {}  # registration -> callback, until the (next) HELLO
        self._reconnect_delay = RECONNECT_MIN
        self._reconnect_timer = None
        self._said_waiting = False  # "waiting for the socket" logged since the last HELLO
        self._reregister = {}  # UbusObject -> [timer, delay] while its name is taken

    # -- connection ------------------------------------------------------------------

    def start(self):
        """Connect now, or keep trying in the background when `reconnect` is set."""
        if not self._connect() and self.reconnect:
            self._say_waiting()
            self._schedule_reconnect()
        return self.sock is not None

    def _say_waiting(self):
        if not self._said_waiting:
            self._said_waiting = True
            self.log(f"waiting for the ubus socket {self.path}")

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return False
        sock.setblocking(False)
        self.sock = sock
        self._conn_no += 1
        self._reader = F.FrameReader(F.MAX_MSG + BUS_GROWTH)
        self._out = bytearray()
        self.loop.add_reader(sock.fileno(), self._readable)
        return True

    def _schedule_reconnect(self):
        if self._reconnect_timer is not None or self.closed:
            return
        delay = self._reconnect_delay
        self._reconnect_delay = min(RECONNECT_MAX, delay * 2)
        self._reconnect_timer = self.loop.call_later(delay, self._try_reconnect)

    def _try_reconnect(self):
        self._reconnect_timer = None
        if self.sock is None and not self.closed and not self._connect():
            self._say_waiting()
            self._schedule_reconnect()

    def close(self):
        self.closed = True
        if self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
            self._reconnect_timer = None
        self._cancel_reregister()
        self._drop_connection(notify=False)
        for request in self._backlog:
            self._finish(request, F.CONNECTION_FAILED)
        self._backlog = []

    def _drop_connection(self, notify=True):
        was_connected = self.connected
        if self.sock is not None:
            self._flush()  # best effort: a final STATUS should not be lost
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self.connected = False
        self.id = None
        self._cancel_reregister()  # the next HELLO registers everything anyway
        for obj in self._objects.values():
            obj.id = None
            obj.has_subscribers = False
        self._objects = {}
        pending, self._pending = self._pending, {}
        for request in pending.values():
            self._finish(request, F.CONNECTION_FAILED)
        if notify and was_connected and self.on_disconnect is not None:
            self.on_disconnect()
        if notify and self.reconnect and not self.closed:
            self._reconnect_delay = RECONNECT_MIN
            self._schedule_reconnect()

    # -- bytes in and out ----------------------------------------------------------

    def _write(self, raw):
        if self.sock is None:
            return False
        if len(raw) - 8 > F.MAX_MSG:  # the bus would hang up on us: never send it
            self.log(f"not sending a message of {len(raw) - 8} bytes: over the ubus limit")
            return False
        self._out += raw
        self._flush()
        return True

    def _flush(self):
        while self._out and self.sock is not None:
            try:
                sent = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.loop.call_soon(self._lost)
                return
            del self._out[:sent]
        if self.sock is not None:
            if self._out:
                self.loop.add_writer(self.sock.fileno(), self._flush)
            else:
                self.loop.remove_writer(self.sock.fileno())

    def _lost(self):
        if self.sock is not None:
            self._out.clear()
            self._drop_connection()

    def _readable(self):
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        try:
            messages = self._reader.feed(data)
        except F.FrameError as e:
            self.log(f"bad message from the bus: {e}")
            self._lost()
            return
        conn = self._conn_no
        for raw in messages:
            if self._conn_no != conn or self.sock is None:
                return
            if raw[0] != 0:  # libubus stops reading on an unknown version
                self._lost()
                return
            self._dispatch(raw)

    def _dispatch(self, raw):
        _v, msg_type, seq, peer = F.header(raw)
        attrs = F.Attrs(F.body_of(raw), F.CLIENT_POLICY)
        if len(raw) - 8 > F.MAX_MSG:
            self._oversized(msg_type, seq, peer, attrs, len(raw) - 8)
        elif msg_type == F.HELLO:
            self._hello(peer)
        elif msg_type in (F.STATUS, F.DATA):
            self._reply(msg_type, seq, peer, attrs)
        elif msg_type == F.INVOKE:
            self._invoked(seq, peer, attrs)
        elif msg_type == F.NOTIFY:
            self._subscribers_changed(attrs)
        elif msg_type == F.UNSUBSCRIBE:
            self._unsubscribed(attrs)
        elif msg_type == F.MONITOR and self.on_monitor is not None:
            self.on_monitor(attrs.body)

    def _oversized(self, msg_type, seq, peer, attrs, size):
        """A message over the limit (ubusd grew it): refuse a call, drop anything else."""
        objid = attrs.u32(F.A_OBJID)
        self.log(f"refusing a message of {size} bytes (type {msg_type}, object "
                 f"{objid or 0:08x}): over the ubus limit of {F.MAX_MSG} bytes")
        if msg_type == F.INVOKE and not attrs.u8(F.A_NO_REPLY):
            body = F.attr_u32(F.A_STATUS, F.INVALID_ARGUMENT) + F.attr_u32(F.A_OBJID, objid or 0)
            self._write(F.message(F.STATUS, seq, peer, body))
        elif msg_type in (F.STATUS, F.DATA):  # a reply we cannot take: the request failed
            request = self._pending.pop((seq, peer), None)
            if request is not None:
                self._finish(request, F.INVALID_ARGUMENT)

    # -- requests ------------------------------------------------------------------

    def _next_seq(self):
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def request(self, msg_type, peer, body, *, on_data=None, on_done=None, timeout=None):
        """Send a request; on_data(attrs) per DATA, on_done(status) at the end.

        timeout in seconds (None/0 = wait forever). Returns the Request.
        """
        seq = self._next_seq()
        raw = F.message(msg_type, seq, peer, body)
        request = Request(seq, peer, raw, on_data, on_done)
        if len(raw) - 8 > F.MAX_MSG:
            self.loop.call_soon(self._finish, request, F.INVALID_ARGUMENT)
            return request
        if timeout:
            request.timer = self.loop.call_later(timeout, self._timed_out, request)
        if self.connected:
            self._transmit(request)
        else:
            self._backlog.append(request)
            if self.sock is None and not self.reconnect:
                self.loop.call_soon(self._fail_backlog)
        return request

    def _fail_backlog(self):
        if self.sock is None:
            backlog, self._backlog = self._backlog, []
            for request in backlog:
                self._finish(request, F.CONNECTION_FAILED)

    def _transmit(self, request):
        self._pending[(request.seq, request.peer)] = request
        request.sent_on = self._conn_no
        self._write(request.raw)

    def _timed_out(self, request):
        request.timer = None
        self._pending.pop((request.seq, request.peer), None)
        if request in self._backlog:
            self._backlog.remove(request)
        self._finish(request, F.TIMEOUT)

    def _finish(self, request, status):
        if request.status is not None:
            return
        request.status = status
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None
        if request.on_done is not None:
            request.on_done(status)

    def cancel(self, request):
        self._pending.pop((request.seq, request.peer), None)
        if request.timer is not None:
            request.timer.cancel()
        request.status = F.TIMEOUT

    def _reply(self, msg_type, seq, peer, attrs):
        request = self._pending.get((seq, peer))
        if request is None:
            return  # late reply after a timeout, or not ours
        if msg_type == F.DATA:
            if request.on_data is not None:
                request.on_data(attrs)
            return
        del self._pending[(seq, peer)]
        status = attrs.i32(F.A_STATUS)
        self._finish(request, F.INVALID_ARGUMENT if status is None else status)

    # -- high level requests -----------------------------------------------------------

    def lookup(self, path, callback):
        """callback(status, [ObjectInfo]); path None = everything, may end with '*'."""
        found = []

        def on_data(attrs):
            objid = attrs.u32(F.A_OBJID)
            path_bytes = attrs.string(F.A_OBJPATH)
            if objid is None or path_bytes is None:
                return
            # OBJTYPE/SIGNATURE are outside libubus's policy: read them with ubusd's.
            full = F.Attrs(attrs.body)
            found.append(ObjectInfo(path_bytes.decode("utf-8", "surrogateescape"), objid,
                                    full.u32(F.A_OBJTYPE), full.payload(F.A_SIGNATURE)))

        body = b"" if path is None else F.attr_str(F.A_OBJPATH, path)
        return self.request(F.LOOKUP, 0, body, on_data=on_data,
                            on_done=lambda status: callback(status, found))

    def lookup_id(self, path, callback):
        """callback(status, id or None): the last DATA wins, as in libubus."""
        def done(status, found):
            callback(status, found[-1].id if found else None)

        return self.lookup(path, done)

    def invoke(self, objid, method, data, callback, *, timeout=30, on_data=None, raw=False):
        """Call objid.method(data). on_data(dict) per reply; callback(status, [dicts]).

        raw=True hands over the DATA payloads as bytes instead of dicts.
        """
        replies = []

        def got(attrs):
            payload = attrs.payload(F.A_DATA)
            if payload is None:
                return
            try:
                value = payload if raw else decode_data(payload)
            except ValueError as e:
                self.log(f"undecodable reply to {method}: {e}")
                return
            replies.append(value)
            if on_data is not None:
                on_data(value)

        body = (F.attr_u32(F.A_OBJID, objid) + F.attr_str(F.A_METHOD, method)
                + F.attr(F.A_DATA, encode_data(data)))
        return self.request(F.INVOKE, objid, body, on_data=got, timeout=timeout,
                            on_done=lambda status: callback(status, replies))

    def call(self, path, method, data, callback, *, timeout=30):
        """lookup + invoke: callback(status, [dicts]).

        ValueError at once for arguments that cannot be encoded: raised later, in
        the loop, it would leave the callback waiting forever.
        """
        payload = encode_data(data)

        def found(status, objid):
            if status:
                callback(status, [])
            elif objid is None:
                callback(F.NOT_FOUND, [])
            else:
                self.invoke(objid, method, payload, callback, timeout=timeout)

        self.lookup_id(path, found)

    def send_event(self, name, data, callback=None):
        body = (F.attr_u32(F.A_OBJID, 1) + F.attr_str(F.A_METHOD, "send")
                + F.attr(F.A_DATA, F.bm_string("id", name)
                         + F.bm_attr(F.BM_TABLE, "data", encode_data(data or {}))))
        return self.request(F.INVOKE, 1, body,
                            on_done=lambda status: callback and callback(status))

    # -- objects -------------------------------------------------------------------

    def add_object(self, obj, callback=None):
        """Publish obj (kept across reconnects); callback(status)."""
        if obj not in self._registered:
            self._registered.append(obj)
        if not self.connected:  # added with everything else after the HELLO
            self._waiting[obj] = callback
            return None
        return self._add(obj, self._when_added(obj, callback))

    def _add(self, obj, callback):
        body = b""
        if obj.name is not None and obj.catch_all is None:
            body = F.attr_str(F.A_OBJPATH, obj.name) + F.attr(F.A_SIGNATURE, obj.signature())

        def on_data(attrs):
            obj.id = attrs.u32(F.A_OBJID)
            obj.type_id = F.Attrs(attrs.body).u32(F.A_OBJTYPE)
            if obj.id is not None:
                self._objects[obj.id] = obj

        def done(status):
            if status and obj.id is not None:
                self._objects.pop(obj.id, None)
                obj.id = None
            if not status:
                obj.held_name = True
            if callback is not None:
                callback(status)

        return self.request(F.ADD_OBJECT, 0, body, on_data=on_data, on_done=done)

    def _when_added(self, obj, callback):
        """The callback for adding obj: the caller's, or else (for a named object that
        was on the bus before) one that keeps trying while another client holds its
        name. A name that was never ours (procd's `system` beside pyprocd) is not
        fought over."""
        if callback is not None or not obj.held_name or obj.catch_all is not None:
            return callback
        return lambda status: self._added_or_retry(obj, status)

    def _added_or_retry(self, obj, status):
        retry = self._reregister.get(obj)
        if not status:
            if retry is not None:
                del self._reregister[obj]
                self.log(f"registered ubus object {obj.name!r}")
            return
        if obj not in self._registered or not self.connected:
            return
        if retry is None:
            retry = self._reregister[obj] = [None, REREGISTER_MIN]
            self.log(f"cannot register ubus object {obj.name!r}: {F.strerror(status)} "
                     "(name taken by another client?); retrying until it is free")
        delay = retry[1]
        retry[1] = min(REREGISTER_MAX, delay * 2)
        retry[0] = self.loop.call_later(delay, self._add_again, obj)

    def _add_again(self, obj):
        retry = self._reregister.get(obj)
        if retry is not None:
            retry[0] = None
        if self.connected and obj in self._registered and obj.id is None:
            self._add(obj, lambda status: self._added_or_retry(obj, status))

    def _cancel_reregister(self, obj=None):
        """Stop retrying to add obj (None: every object)."""
        for each in list(self._reregister) if obj is None else [obj]:
            retry = self._reregister.pop(each, None)
            if retry is not None and retry[0] is not None:
                retry[0].cancel()

    def remove_object(self, obj, callback=None):
        self._cancel_reregister(obj)
        if obj in self._registered:
            self._registered.remove(obj)
        self._patterns = [p for p in self._patterns if p[1] is not obj]
        self._subscriptions = [s for s in self._subscriptions if s[0] is not obj]
        if obj.id is None:
            if callback is not None:
                self.loop.call_soon(callback, F.OK)
            return None
        objid, obj.id = obj.id, None
        self._objects.pop(objid, None)
        return self.request(F.REMOVE_OBJECT, 0, F.attr_u32(F.A_OBJID, objid),
                            on_done=lambda status: callback and callback(status))

    def notify(self, obj, method, data, *, no_reply=True, callback=None):
        """Publish a notification to obj's subscribers (procd: fire and forget)."""
        if obj.id is None or not self.connected:
            return None
        body = (F.attr_u32(F.A_OBJID, obj.id) + F.attr_str(F.A_METHOD, method)
                + F.attr(F.A_DATA, encode_data(data)))
        if no_reply:
            body += F.attr_u8(F.A_NO_REPLY, 1)
            self._write(_frame(F.NOTIFY, self._next_seq(), obj.id, body, "notification"))
            return None
        return self.request(F.NOTIFY, obj.id, body,
                            on_done=lambda status: callback and callback(status))

    def register_event(self, pattern, handler, callback=None, *, raw=False):
        """handler(event name, data) for events matching pattern; callback(status).

        Creates one anonymous listener object for this pattern (see `listen`
        to put several patterns on one object).
        """
        listener = UbusObject(catch_all=lambda inv, data: handler(inv.method, data),
                              raw_data=raw)
        self.add_object(listener, lambda status: self.listen(listener, pattern, callback)
                        if not status else callback and callback(status))
        return listener

    def listen(self, listener, pattern, callback=None):
        """Register `pattern` for an already added catch-all listener object."""
        if (pattern, listener) not in self._patterns:
            self._patterns.append((pattern, listener))
        self._register_pattern(listener, pattern, F.OK, callback)

    def _register_pattern(self, listener, pattern, status, callback):
        if status or listener.id is None:
            if callback is not None:
                callback(status or F.NOT_FOUND)
            return
        data = F.bm_int32("object", listener.id) + F.bm_string("pattern", pattern)
        body = F.attr_u32(F.A_OBJID, 1) + F.attr_str(F.A_METHOD, "register") + F.attr(F.A_DATA, data)
        self.request(F.INVOKE, 1, body, on_done=lambda st: callback and callback(st))

    def _listener_added(self, listener, patterns, status, callback):
        for pattern in patterns:
            self._register_pattern(listener, pattern, status, None)
        if callback is not None:
            callback(status)

    def subscribe(self, subscriber, path, callback=None):
        """Subscribe a (catch_all) subscriber object, already added, to the object at path."""
        if (subscriber, path) not in self._subscriptions:
            self._subscriptions.append((subscriber, path))
        if not self.connected:
            self._waiting[(subscriber, path)] = callback
            return
        self._subscribe(subscriber, path, callback)

    def _subscribe(self, subscriber, path, callback):
        def found(status, target):
            if status or target is None or subscriber.id is None:
                if callback is not None:
                    callback(status or F.NOT_FOUND)
                return
            body = F.attr_u32(F.A_OBJID, subscriber.id) + F.attr_u32(F.A_TARGET, target)
            self.request(F.SUBSCRIBE, 0, body, on_done=lambda st: callback and callback(st))

        self.lookup_id(path, found)

    # -- incoming ------------------------------------------------------------------

    def _hello(self, client_id):
        if self.connected:
            return
        self.id = client_id
        self.connected = True
        self._reconnect_delay = RECONNECT_MIN
        self._said_waiting = False
        waiting, self._waiting = self._waiting, {}
        patterns_of = {}
        for pattern, listener in self._patterns:
            patterns_of.setdefault(id(listener), []).append(pattern)
        for obj in self._registered:
            patterns = patterns_of.get(id(obj))
            callback = waiting.get(obj)
            if patterns:  # a listener again: its patterns once its new id is known
                callback = (lambda st, o=obj, ps=patterns, cb=callback:
                            self._listener_added(o, ps, st, cb))
            self._add(obj, self._when_added(obj, callback))
        for subscriber, path in self._subscriptions:
            self._subscribe(subscriber, path, waiting.get((subscriber, path)))
        backlog, self._backlog = self._backlog, []
        for request in backlog:
            if request.status is None:
                self._transmit(request)
        if self.on_connect is not None:
            self.on_connect()

    def _bare_status(self, status):
        # libubus answers calls it cannot attribute with seq 0, peer 0, OBJID 0;
        # ubusd drops those, and the caller times out.
        body = F.attr_u32(F.A_STATUS, status) + F.attr_u32(F.A_OBJID, 0)
        self._write(F.message(F.STATUS, 0, 0, body))

    def _invoked(self, seq, caller, attrs):
        obj = self._objects.get(attrs.u32(F.A_OBJID))
        if obj is None:
            return self._bare_status(F.NOT_FOUND)
        method = attrs.string(F.A_METHOD)
        if method is None:
            return self._bare_status(F.INVALID_ARGUMENT)
        method = method.decode("utf-8", "surrogateescape")
        full = F.Attrs(attrs.body)
        invocation = Invocation(self, obj, method, seq, caller,
                                _text(full.string(F.A_USER)), _text(full.string(F.A_GROUP)),
                                bool(attrs.u8(F.A_NO_REPLY)))
        handler = obj.catch_all
        if handler is None:
            entry = obj.methods.get(method)
            if entry is not None:
                handler = entry[1]
            elif obj.fallback is not None:
                handler = obj.fallback
            else:
                return invocation.complete(F.METHOD_NOT_FOUND)
        payload = full.payload(F.A_DATA)
        if payload is None:
            return invocation.complete(F.INVALID_ARGUMENT)
        try:
            data = payload if obj.raw_data else decode_data(payload)
        except ValueError:
            self.log(f"{obj.name}.{method}: undecodable arguments")
            return invocation.complete(F.INVALID_ARGUMENT)
        try:
            status = handler(invocation, data)
        except Exception as e:  # noqa: BLE001 - a handler bug must not kill the connection
            self.log(f"{obj.name}.{method}: handler failed: {type(e).__name__}: {e}")
            status = F.UNKNOWN_ERROR
            invocation.deferred = False
        if not invocation.deferred and not invocation.done:
            invocation.complete(F.OK if status is None else status)
        return None

    def _subscribers_changed(self, attrs):
        obj = self._objects.get(attrs.u32(F.A_OBJID))
        active = attrs.u8(F.A_ACTIVE)
        if obj is None or active is None:
            return
        obj.has_subscribers = bool(active)
        if obj.on_subscribe is not None:
            obj.on_subscribe(obj.has_subscribers)

    def _unsubscribed(self, attrs):
        obj = self._objects.get(attrs.u32(F.A_OBJID))
        if obj is not None and obj.on_remove is not None:
            obj.on_remove(F.Attrs(attrs.body).u32(F.A_TARGET))


def _text(value):
    return None if value is None else value.decode("utf-8", "surrogateescape")


class BlockingUbus:
    """Synchronous convenience wrapper: its own Loop, run until each answer arrives.

        with BlockingUbus("/tmp/ubus.sock") as bus:
            status, replies = bus.call("service", "list", {})
    """

    def __init__(self, path=F.DEFAULT_SOCKET, timeout=30, loop=None):
        from pyprocd.loop import Loop

        self.loop = loop or Loop()
        self.timeout = timeout
        self.client = UbusClient(self.loop, path, reconnect=False)
        if not self.client.start():
            self.loop.close()
            raise ConnectionError(errno.ECONNREFUSED, f"cannot connect to {path}")
        if not self.loop.run_until(lambda: self.client.connected or self.client.sock is None,
                                   timeout or 30) or not self.client.connected:
            self.close()
            raise ConnectionError(errno.ECONNREFUSED, f"no HELLO from {path}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.client.close()
        self.loop.close()

    def wait(self, start, timeout=None):
        """start(callback) issues a request; returns the callback's arguments."""
        result = []
        start(lambda *args: result.append(args))
        self.loop.run_until(lambda: result, timeout or 3600 * 24 * 365)
        return result[0] if result else (F.TIMEOUT, None)

    def call(self, path, method, data=None, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        return self.wait(lambda cb: self.client.call(path, method, data or {}, cb,
                                                     timeout=timeout))

    def invoke(self, objid, method, data=None, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        return self.wait(lambda cb: self.client.invoke(objid, method, data or {}, cb,
                                                       timeout=timeout))

    def lookup(self, path=None):
        return self.wait(lambda cb: self.client.lookup(path, cb))

    def send_event(self, name, data=None):
        return self.wait(lambda cb: self.client.send_event(name, data or {}, cb))[0]

    def run(self, seconds):
        self.loop.run_until(lambda: False, seconds)

