"""ubus messages: the 8-byte header + one blob of attributes, and a stream decoder.

    >>> from pyprocd.wire import ubusmsg as um
    >>> frame = um.encode(um.Message(um.INVOKE, 2, 0x11223344, {
    ...     um.ATTR_OBJID: 0x11223344, um.ATTR_METHOD: "hello", um.ATTR_DATA: {"name": "x"}}))
    >>> reader = um.MessageReader()
    >>> reader.feed(frame[:5]), reader.feed(frame[5:])[0].attrs[um.ATTR_DATA]
    ([], {'name': 'x'})

Frame: u8 version, u8 type, be16 seq, be32 peer, then one plain blob
attribute (id 0) whose payload is the message attributes; the frame is
exactly 8 + that blob's raw length bytes. Top-level attributes are *plain*
blob attributes (no name header) keyed by UBUS_ATTR_* id; only inside
SIGNATURE and DATA are the values blobmsg.

`Message.attrs` maps attribute id -> Python value, in wire order:

==================  =====================  ====================================
attribute           wire type              Python value
==================  =====================  ====================================
STATUS              INT32                  int, signed (a ubus status code)
OBJPATH, METHOD,    STRING                 str (up to the first NUL; non-UTF-8
USER, GROUP                                bytes kept as surrogate escapes)
OBJID, OBJTYPE,     INT32                  int, unsigned 0..2**32-1 (negative
TARGET                                     ints are accepted when encoding)
ACTIVE, NO_REPLY    INT8                   bool
DATA                NESTED (blobmsg)       dict, as blobmsg.decode_table gives
                                           (INT64 -> types.Int64 and so on);
                                           RawBlob if the content is not a valid
                                           blobmsg table (e.g. the ubus CLI's
                                           monitor add/remove, which puts plain
                                           OBJID/METHOD attributes there)
SIGNATURE           NESTED (blobmsg)       dict method name -> dict argument
                                           name -> blobmsg type number, in
                                           registration order, e.g.
                                           {"list": {"name": 3, "verbose": 7},
                                            "info": {}}; RawBlob if invalid
SUBSCRIBERS         NESTED (id-0 INT32s)   list of int object ids
==================  =====================  ====================================

MONITOR messages use their own ids (MONITOR_CLIENT .. MONITOR_DATA):
CLIENT, PEER, SEQ, TYPE -> int (unsigned), SEND -> bool, DATA -> the
monitored message's attributes as a dict like `Message.attrs` (RawBlob if
they cannot be read).

When reading, an attribute whose payload does not fit its type is dropped,
unknown ids are dropped and a repeated attribute keeps its last value: what
libubus and ubusd see. `Message.body` keeps the received attribute bytes for
verbatim forwarding (`encode_frame`). For encoding, a RawBlob/bytes value of
any attribute is written as its payload unchanged.

`MessageReader.feed` raises BlobError when the stream cannot be framed any
more (blob length < 4 or above MAX_MESSAGE_LEN); the connection must then be
dropped, as ubusd does. A bad attribute inside a well-framed message is not
an error (see above).
"""

import struct

from . import blobmsg
from .blob import LEN_MASK, BlobError, check_type, encode_attr, iter_attrs

__all__ = [
    "ADD_OBJECT",
    "ATTR_ACTIVE",
    "ATTR_DATA",
    "ATTR_GROUP",
    "ATTR_METHOD",
    "ATTR_NAMES",
    "ATTR_NO_REPLY",
    "ATTR_OBJID",
    "ATTR_OBJPATH",
    "ATTR_OBJTYPE",
    "ATTR_SIGNATURE",
    "ATTR_STATUS",
    "ATTR_SUBSCRIBERS",
    "ATTR_TARGET",
    "ATTR_UNSPEC",
    "ATTR_USER",
    "DATA",
    "HEADER_LEN",
    "HELLO",
    "INVOKE",
    "LOOKUP",
    "MAX_MESSAGE_LEN",
    "MONITOR",
    "MONITOR_ATTR_NAMES",
    "MONITOR_CLIENT",
    "MONITOR_DATA",
    "MONITOR_PEER",
    "MONITOR_SEND",
    "MONITOR_SEQ",
    "MONITOR_TYPE",
    "MSG_NAMES",
    "NOTIFY",
    "PING",
    "REMOVE_OBJECT",
    "STATUS",
    "SUBSCRIBE",
    "SYSTEM_OBJECT_ACL",
    "SYSTEM_OBJECT_EVENT",
    "SYSTEM_OBJECT_MONITOR",
    "UNSUBSCRIBE",
    "BlobError",
    "Message",
    "MessageReader",
    "RawBlob",
    "decode_attrs",
    "encode",
    "encode_attrs",
    "encode_frame",
]

# Message types (UBUS_MSG_*)
HELLO = 0
STATUS = 1
DATA = 2
PING = 3
LOOKUP = 4
INVOKE = 5
ADD_OBJECT = 6
REMOVE_OBJECT = 7
SUBSCRIBE = 8
UNSUBSCRIBE = 9
NOTIFY = 10
MONITOR = 11
MSG_NAMES = {HELLO: "hello", STATUS: "status", DATA: "data", PING: "ping", LOOKUP: "lookup",
             INVOKE: "invoke", ADD_OBJECT: "add_object", REMOVE_OBJECT: "remove_object",
             SUBSCRIBE: "subscribe", UNSUBSCRIBE: "unsubscribe", NOTIFY: "notify",
             MONITOR: "monitor"}

# Top-level attributes (UBUS_ATTR_*)
ATTR_UNSPEC = 0
ATTR_STATUS = 1
ATTR_OBJPATH = 2
ATTR_OBJID = 3
ATTR_METHOD = 4
ATTR_OBJTYPE = 5
ATTR_SIGNATURE = 6
ATTR_DATA = 7
ATTR_TARGET = 8
ATTR_ACTIVE = 9
ATTR_NO_REPLY = 10
ATTR_SUBSCRIBERS = 11
ATTR_USER = 12
ATTR_GROUP = 13
ATTR_NAMES = {ATTR_STATUS: "status", ATTR_OBJPATH: "objpath", ATTR_OBJID: "objid",
              ATTR_METHOD: "method", ATTR_OBJTYPE: "objtype", ATTR_SIGNATURE: "signature",
              ATTR_DATA: "data", ATTR_TARGET: "target", ATTR_ACTIVE: "active",
              ATTR_NO_REPLY: "no_reply", ATTR_SUBSCRIBERS: "subscribers", ATTR_USER: "user",
              ATTR_GROUP: "group"}

# Attributes of MONITOR messages (UBUS_MONITOR_*), a separate id space
MONITOR_CLIENT = 0
MONITOR_PEER = 1
MONITOR_SEND = 2
MONITOR_SEQ = 3
MONITOR_TYPE = 4
MONITOR_DATA = 5
MONITOR_ATTR_NAMES = {MONITOR_CLIENT: "client", MONITOR_PEER: "peer", MONITOR_SEND: "send",
                      MONITOR_SEQ: "seq", MONITOR_TYPE: "type", MONITOR_DATA: "data"}

SYSTEM_OBJECT_EVENT = 1
SYSTEM_OBJECT_ACL = 2
SYSTEM_OBJECT_MONITOR = 3

HEADER_LEN = 8
MAX_MESSAGE_LEN = 1048576  # ubusd/libubus limit on the (padded) message blob

_HEADER = struct.Struct(">BBHI")
_BLOB_HDR = struct.Struct(">I")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")


class RawBlob(bytes):
    """Attribute payload kept as bytes because it is not what its id should hold."""

    __slots__ = ()

    def __repr__(self):
        return f"RawBlob({bytes(self).hex()})"


class Message:
    """One ubus message. `attrs`: attribute id -> value (see the module docstring).

    `body` is set on received messages: their attribute bytes as they came.
    (A plain slotted class: dataclasses would pull inspect/ast into the daemon.)
    """

    __slots__ = ("attrs", "body", "peer", "seq", "type", "version")

    def __init__(self, type, seq=0, peer=0, attrs=None, version=0, body=None):
        self.type = type
        self.seq = seq
        self.peer = peer
        self.attrs = {} if attrs is None else attrs
        self.version = version
        self.body = body

    def get(self, attr_id, default=None):
        return self.attrs.get(attr_id, default)

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        return (self.type, self.seq, self.peer, self.version, self.attrs) == (
            other.type, other.seq, other.peer, other.version, other.attrs)

    __hash__ = None

    def __repr__(self):
        name = MSG_NAMES.get(self.type, str(self.type))
        return (f"Message({name}, seq={self.seq}, peer={self.peer:#x}, attrs={self.attrs!r}"
                + (f", version={self.version}" if self.version else "") + ")")


# -------------------------------------------------------------- attribute kinds

_K_U32, _K_I32, _K_STR, _K_BOOL, _K_TABLE, _K_IDLIST, _K_ATTRS = range(7)

# id -> (kind, plain blob type that validates the payload)
_MESSAGE_ATTRS = {
    ATTR_STATUS: (_K_I32, 6),
    ATTR_OBJPATH: (_K_STR, 3),
    ATTR_OBJID: (_K_U32, 6),
    ATTR_METHOD: (_K_STR, 3),
    ATTR_OBJTYPE: (_K_U32, 6),
    ATTR_SIGNATURE: (_K_TABLE, 1),
    ATTR_DATA: (_K_TABLE, 1),
    ATTR_TARGET: (_K_U32, 6),
    ATTR_ACTIVE: (_K_BOOL, 4),
    ATTR_NO_REPLY: (_K_BOOL, 4),
    ATTR_SUBSCRIBERS: (_K_IDLIST, 1),
    ATTR_USER: (_K_STR, 3),
    ATTR_GROUP: (_K_STR, 3),
}
_MONITOR_ATTRS = {
    MONITOR_CLIENT: (_K_U32, 6),
    MONITOR_PEER: (_K_U32, 6),
    MONITOR_SEND: (_K_BOOL, 4),
    MONITOR_SEQ: (_K_U32, 6),
    MONITOR_TYPE: (_K_U32, 6),
    MONITOR_DATA: (_K_ATTRS, 1),
}


def _decode_payload(kind, payload):
    if kind == _K_U32:
        return _U32.unpack(payload)[0]
    if kind == _K_STR:
        raw = bytes(payload)
        return raw[:raw.find(b"\0")].decode("utf-8", "surrogateescape")
    if kind == _K_TABLE:
        try:
            return blobmsg.decode_table(payload)
        except BlobError:
            return RawBlob(payload)
    if kind == _K_I32:
        return _I32.unpack(payload)[0]
    if kind == _K_BOOL:
        return payload[0] != 0
    if kind == _K_IDLIST:
        return [_U32.unpack(p)[0] for _i, _e, p in iter_attrs(payload) if len(p) == 4]
    return decode_attrs(payload)


def decode_attrs(body, monitor=False):
    """Top-level attributes -> {id: value}, with libubus's rules (see module doc)."""
    table = _MONITOR_ATTRS if monitor else _MESSAGE_ATTRS
    attrs = {}
    for attr_id, _ext, payload in iter_attrs(body):
        spec = table.get(attr_id)
        if spec is None or not check_type(payload, spec[1]):
            continue  # unknown id or wrong type: treated as absent
        attrs.pop(attr_id, None)  # last one wins, and goes where it was seen last
        attrs[attr_id] = _decode_payload(spec[0], payload)
    return attrs


def _encode_payload(kind, value, attr_id):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if kind == _K_U32 or kind == _K_I32:
        if not isinstance(value, int) or not -(1 << 31) <= value < (1 << 32):
            raise BlobError(f"attribute {attr_id}: {value!r} is not a 32-bit integer")
        return _U32.pack(value & 0xFFFFFFFF)
    if kind == _K_STR:
        if not isinstance(value, str):
            raise BlobError(f"attribute {attr_id}: expected str, got {type(value).__name__}")
        return value.encode("utf-8", "surrogateescape") + b"\0"
    if kind == _K_TABLE:
        return blobmsg.encode_table(value)
    if kind == _K_BOOL:
        return b"\1" if value else b"\0"
    if kind == _K_IDLIST:
        return b"".join(encode_attr(0, _U32.pack(i & 0xFFFFFFFF)) for i in value)
    return encode_attrs(value)


def encode_attrs(attrs, monitor=False):
    """{id: value} -> the concatenated top-level attributes (a message body)."""
    table = _MONITOR_ATTRS if monitor else _MESSAGE_ATTRS
    parts = []
    for attr_id, value in attrs.items():
        spec = table.get(attr_id)
        if spec is None:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise BlobError(f"unknown attribute id {attr_id}: give its payload as bytes")
            parts.append(encode_attr(attr_id, value))
            continue
        parts.append(encode_attr(attr_id, _encode_payload(spec[0], value, attr_id)))
    return b"".join(parts)


def encode_frame(msg_type, seq, peer, body, version=0):
    """A whole frame around an already encoded attribute `body`."""
    blob_len = 4 + len(body)
    if blob_len > MAX_MESSAGE_LEN:
        raise BlobError(f"message blob of {blob_len} bytes exceeds {MAX_MESSAGE_LEN}")
    return (_HEADER.pack(version & 0xFF, msg_type & 0xFF, seq & 0xFFFF, peer & 0xFFFFFFFF)
            + _BLOB_HDR.pack(blob_len) + body)


def encode(msg):
    """Message -> bytes on the wire."""
    body = encode_attrs(msg.attrs, monitor=msg.type == MONITOR)
    return encode_frame(msg.type, msg.seq, msg.peer, body, msg.version)


class MessageReader:
    """Incremental frame decoder: feed it whatever recv() returned."""

    __slots__ = ("_buf", "max_len")

    def __init__(self, max_len=MAX_MESSAGE_LEN):
        self._buf = bytearray()
        self.max_len = max_len

    def pending(self):
        """Number of buffered bytes that do not form a whole message yet."""
        return len(self._buf)

    def feed(self, data):
        """Add bytes; return the list of messages completed by them (maybe empty).

        BlobError when a frame header is garbage; its `.messages` holds the
        messages completed before it. The reader stays broken afterwards.
        """
        buf = self._buf
        buf += data
        messages = []
        pos = 0
        try:
            while len(buf) - pos >= 12:
                blob_len = _BLOB_HDR.unpack_from(buf, pos + 8)[0] & LEN_MASK
                if blob_len < 4 or (blob_len + 3) & ~3 > self.max_len:
                    err = BlobError(f"message blob length {blob_len} outside 4..{self.max_len}: "
                                    "the stream is garbage from here, drop the connection")
                    err.messages = messages  # the whole messages read before the garbage
                    raise err
                end = pos + 8 + blob_len
                if end > len(buf):
                    break
                version, msg_type, seq, peer = _HEADER.unpack_from(buf, pos)
                body = bytes(buf[pos + 12:end])
                attrs = decode_attrs(body, monitor=msg_type == MONITOR)
                messages.append(Message(msg_type, seq, peer, attrs, version, body))
                pos = end
        finally:
            del buf[:pos]
        return messages
