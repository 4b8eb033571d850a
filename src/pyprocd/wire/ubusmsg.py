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

`FrameReader.feed` (whole frames as bytes, what the bus forwards verbatim)
and `MessageReader.feed` (decoded Messages, built on it) raise BlobError when
the stream cannot be framed any more (blob length < 4 or above
MAX_MESSAGE_LEN); the connection must then be dropped, as ubusd does. A bad
attribute inside a well-framed message is not an error (see above).
"""

import struct

from .blob import LEN_MASK, BlobError, check_type, encode_attr, iter_attrs

__all__ = [
    "ADD_OBJECT",
    "ATTR_ACTIVE",
    "ATTR_DATA",
    "ATTR_GROUP",
    "ATTR_MAX",
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
    "CONNECTION_FAILED",
    "DATA",
    "DEFAULT_SOCKET",
    "HEADER_LEN",
    "HELLO",
    "INVALID_ARGUMENT",
    "INVALID_COMMAND",
    "INVOKE",
    "LOOKUP",
    "MAX_MESSAGE_LEN",
    "METHOD_NOT_FOUND",
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
    "NOT_FOUND",
    "NOT_SUPPORTED",
    "NO_DATA",
    "NO_MEMORY",
    "OK",
    "PARSE_ERROR",
    "PERMISSION_DENIED",
    "PING",
    "REMOVE_OBJECT",
    "STATUS",
    "STATUS_TEXT",
    "SUBSCRIBE",
    "SYSTEM_ERROR",
    "SYSTEM_OBJECT_ACL",
    "SYSTEM_OBJECT_EVENT",
    "SYSTEM_OBJECT_MONITOR",
    "TIMEOUT",
    "UNKNOWN_ERROR",
    "UNSUBSCRIBE",
    "BlobError",
    "FrameReader",
    "Message",
    "MessageReader",
    "RawBlob",
    "decode_attrs",
    "decode_frame",
    "encode",
    "encode_attrs",
    "encode_frame",
    "header",
    "pack_frame",
    "strerror",
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
ATTR_MAX = 14  # UBUS_ATTR_MAX: ubusd and libubus ignore ids from here on
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

# Status codes (UBUS_STATUS_*), the value of ATTR_STATUS, and their texts (ubus_strerror)
OK = 0
INVALID_COMMAND = 1
INVALID_ARGUMENT = 2
METHOD_NOT_FOUND = 3
NOT_FOUND = 4
NO_DATA = 5
PERMISSION_DENIED = 6
TIMEOUT = 7
NOT_SUPPORTED = 8
UNKNOWN_ERROR = 9
CONNECTION_FAILED = 10
NO_MEMORY = 11
PARSE_ERROR = 12
SYSTEM_ERROR = 13
STATUS_TEXT = (
    "Success", "Invalid command", "Invalid argument", "Method not found", "Not found",
    "No response", "Permission denied", "Request timed out", "Operation not supported",
    "Unknown error", "Connection failed", "Out of memory", "Parsing message data failed",
    "System error",
)


def strerror(status):
    """ubus_strerror: the text for a status code."""
    if 0 <= status < len(STATUS_TEXT):
        return STATUS_TEXT[status]
    return f"Unknown error: {status}"


DEFAULT_SOCKET = "/var/run/ubus/ubus.sock"

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


_blobmsg = None


def _load_blobmsg():
    """The blobmsg codec, imported on first use: the bus frames with this module and never
    decodes DATA, so it does not pay blobmsg's memory (a cached global: an import statement
    per attribute would cost more than the decoding)."""
    global _blobmsg
    from . import blobmsg

    _blobmsg = blobmsg
    return blobmsg


def _decode_payload(kind, payload):
    if kind == _K_U32:
        return _U32.unpack(payload)[0]
    if kind == _K_STR:
        raw = bytes(payload)
        return raw[:raw.find(b"\0")].decode("utf-8", "surrogateescape")
    if kind == _K_TABLE:
        try:
            return (_blobmsg or _load_blobmsg()).decode_table(payload)
        except BlobError:
            return RawBlob(payload)
    if kind == _K_I32:
        return _I32.unpack(payload)[0]
    if kind == _K_BOOL:
        return payload[0] != 0
    if kind == _K_IDLIST:
        return [_U32.unpack_from(payload, start)[0]
                for _i, _e, start, end, _n in iter_attrs(payload) if end - start == 4]
    return decode_attrs(payload)


def decode_attrs(body, monitor=False):
    """Top-level attributes -> {id: value}, with libubus's rules (see module doc)."""
    table = _MONITOR_ATTRS if monitor else _MESSAGE_ATTRS
    attrs = {}
    view = memoryview(body)
    for attr_id, _ext, start, end, _next in iter_attrs(body):
        spec = table.get(attr_id)
        if spec is None or end < start or not check_type(body, spec[1], start, end):
            continue  # unknown id, raw length < 4 or wrong type: treated as absent
        attrs.pop(attr_id, None)  # last one wins, and goes where it was seen last
        attrs[attr_id] = _decode_payload(spec[0], view[start:end])
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
        return (_blobmsg or _load_blobmsg()).encode_table(value)
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


def pack_frame(msg_type, seq, peer, body=b"", version=0):
    """A whole frame around an already encoded attribute `body`, unchecked (the bus's builder)."""
    return (_HEADER.pack(version & 0xFF, msg_type & 0xFF, seq & 0xFFFF, peer & 0xFFFFFFFF)
            + _BLOB_HDR.pack(4 + len(body)) + body)


def encode_frame(msg_type, seq, peer, body, version=0):
    """pack_frame, refusing a message blob above MAX_MESSAGE_LEN."""
    blob_len = 4 + len(body)
    if blob_len > MAX_MESSAGE_LEN:
        raise BlobError(f"message blob of {blob_len} bytes exceeds {MAX_MESSAGE_LEN}")
    return pack_frame(msg_type, seq, peer, body, version)


# header(frame) -> (version, type, seq, peer) of a whole frame (a bound method: no
# Python call layer, the broker reads one per message)
header = _HEADER.unpack_from


def decode_frame(frame):
    """A whole frame (as FrameReader gives) -> Message, `body` its attribute bytes."""
    version, msg_type, seq, peer = _HEADER.unpack_from(frame)
    body = frame[12:]
    return Message(msg_type, seq, peer, decode_attrs(body, monitor=msg_type == MONITOR), version,
                   body)


def encode(msg):
    """Message -> bytes on the wire."""
    body = encode_attrs(msg.attrs, monitor=msg.type == MONITOR)
    return encode_frame(msg.type, msg.seq, msg.peer, body, msg.version)


class FrameReader:
    """Incremental framer: feed it whatever recv() returned, get whole frames (bytes).

    The one reader of the stream: the bus forwards these bytes verbatim,
    MessageReader decodes them.
    """

    __slots__ = ("_buf", "max_len")

    def __init__(self, max_len=MAX_MESSAGE_LEN):
        self._buf = bytearray()
        self.max_len = max_len

    def pending(self):
        """Number of buffered bytes that do not form a whole frame yet."""
        return len(self._buf)

    def feed(self, data):
        """Add bytes; return the list of frames completed by them (maybe empty).

        BlobError when a frame header is garbage; its `.frames` holds the
        frames completed before it. The reader stays broken afterwards.
        """
        buf = self._buf
        buf += data
        frames = []
        pos = 0
        try:
            while len(buf) - pos >= 12:
                blob_len = _BLOB_HDR.unpack_from(buf, pos + 8)[0] & LEN_MASK
                if blob_len < 4 or (blob_len + 3) & ~3 > self.max_len:
                    err = BlobError(f"message blob length {blob_len} outside 4..{self.max_len}: "
                                    "the stream is garbage from here, drop the connection")
                    err.frames = frames  # the whole frames read before the garbage
                    raise err
                end = pos + 8 + blob_len
                if end > len(buf):
                    break
                frames.append(bytes(buf[pos:end]))
                pos = end
        finally:
            if pos:
                del buf[:pos]
        return frames


class MessageReader(FrameReader):
    """FrameReader that decodes each frame into a Message."""

    __slots__ = ()

    def feed(self, data):
        """Add bytes; return the list of Messages completed by them (maybe empty).

        BlobError as FrameReader.feed; its `.messages` holds the messages
        completed before the garbage.
        """
        try:
            frames = FrameReader.feed(self, data)
        except BlobError as err:
            err.messages = [decode_frame(frame) for frame in err.frames]
            raise
        return [decode_frame(frame) for frame in frames]
