"""Raw ubus framing for the bus layer: headers, top-level attributes, byte-exact.

Why this exists beside pyprocd.wire.ubusmsg: a broker must apply ubusd's exact
parsing rules (an attribute of the wrong type is *absent*, the last duplicate
wins, ids beyond the table are ignored) and must forward message bodies and
DATA attributes verbatim, without a decode/encode round trip that could change
a single byte. So the broker and the client work on raw bytes here and call the
blobmsg codec (pyprocd.wire.blobmsg) only for the contents of DATA/SIGNATURE.
"""

import struct

DEFAULT_SOCKET = "/var/run/ubus/ubus.sock"
MAX_MSG = 1048576  # ubus's compiled-in maximum message blob size

# message types (UBUS_MSG_*)
HELLO, STATUS, DATA, PING, LOOKUP, INVOKE = 0, 1, 2, 3, 4, 5
ADD_OBJECT, REMOVE_OBJECT, SUBSCRIBE, UNSUBSCRIBE, NOTIFY, MONITOR = 6, 7, 8, 9, 10, 11

# top-level attributes (UBUS_ATTR_*)
A_STATUS, A_OBJPATH, A_OBJID, A_METHOD, A_OBJTYPE, A_SIGNATURE, A_DATA = 1, 2, 3, 4, 5, 6, 7
A_TARGET, A_ACTIVE, A_NO_REPLY, A_SUBSCRIBERS, A_USER, A_GROUP = 8, 9, 10, 11, 12, 13
ATTR_MAX = 14

# monitor attributes (UBUS_MONITOR_*)
M_CLIENT, M_PEER, M_SEND, M_SEQ, M_TYPE, M_DATA = 0, 1, 2, 3, 4, 5

# status codes
OK, INVALID_COMMAND, INVALID_ARGUMENT, METHOD_NOT_FOUND, NOT_FOUND = 0, 1, 2, 3, 4
NO_DATA, PERMISSION_DENIED, TIMEOUT, NOT_SUPPORTED, UNKNOWN_ERROR = 5, 6, 7, 8, 9
CONNECTION_FAILED, NO_MEMORY, PARSE_ERROR, SYSTEM_ERROR = 10, 11, 12, 13

STATUS_TEXT = (
    "Success", "Invalid command", "Invalid argument", "Method not found", "Not found",
    "No response", "Permission denied", "Request timed out", "Operation not supported",
    "Unknown error", "Connection failed", "Out of memory", "Parsing message data failed",
    "System error",
)


def strerror(status):
    if 0 <= status < len(STATUS_TEXT):
        return STATUS_TEXT[status]
    return f"Unknown error: {status}"


# plain blob types used by attribute policies (BLOB_ATTR_*)
B_UNSPEC, B_NESTED, B_BINARY, B_STRING, B_INT8, B_INT16, B_INT32, B_INT64, B_DOUBLE = range(9)

# ubusd's policy; ids without an entry accept any payload
UBUSD_POLICY = {
    A_STATUS: B_INT32, A_OBJPATH: B_STRING, A_OBJID: B_INT32, A_METHOD: B_STRING,
    A_OBJTYPE: B_INT32, A_SIGNATURE: B_NESTED, A_USER: B_STRING, A_GROUP: B_STRING,
}
# libubus's policy
CLIENT_POLICY = {
    A_STATUS: B_INT32, A_OBJID: B_INT32, A_OBJPATH: B_STRING, A_METHOD: B_STRING,
    A_ACTIVE: B_INT8, A_NO_REPLY: B_INT8, A_SUBSCRIBERS: B_NESTED,
}

_HEADER = struct.Struct(">BBHI")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")


class FrameError(Exception):
    """The peer announced a message we must not accept: drop the connection."""


# -- building ------------------------------------------------------------------


def attr(attr_id, payload, extended=False):
    """One blob attribute: header word, payload, zero padding to 4 bytes."""
    raw_len = 4 + len(payload)
    head = (0x80000000 if extended else 0) | (attr_id & 0x7F) << 24 | raw_len
    return _U32.pack(head) + bytes(payload) + b"\0" * (-raw_len & 3)


def attr_u32(attr_id, value):
    return attr(attr_id, _U32.pack(value & 0xFFFFFFFF))


def attr_str(attr_id, text):
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    return attr(attr_id, text + b"\0")


def attr_u8(attr_id, value):
    return attr(attr_id, bytes((value & 0xFF,)))


def message(msg_type, seq, peer, body=b"", version=0):
    """A complete ubus message: header + the id-0 blob holding `body` (encoded attributes)."""
    return _HEADER.pack(version & 0xFF, msg_type & 0xFF, seq & 0xFFFF, peer & 0xFFFFFFFF) + \
        _U32.pack(4 + len(body)) + body


def header(raw):
    """(version, type, seq, peer) of a complete message."""
    return _HEADER.unpack_from(raw, 0)


# -- parsing -------------------------------------------------------------------


def iter_attrs(buf, start=0, end=None):
    """Yield (id, extended, payload_start, payload_end, next_offset) per blob rules (§1.4)."""
    if end is None:
        end = len(buf)
    off = start
    while end - off >= 4:
        head = _U32.unpack_from(buf, off)[0]
        raw_len = head & 0xFFFFFF
        padded = (raw_len + 3) & ~3
        if raw_len < 4 or padded > end - off:
            return
        yield (head >> 24) & 0x7F, bool(head & 0x80000000), off + 4, off + raw_len, off + padded
        off += padded


def _type_ok(blob_type, payload_len, buf, payload_end):
    if blob_type == B_STRING:
        return payload_len >= 1 and buf[payload_end - 1] == 0
    if blob_type == B_INT8:
        return payload_len == 1
    if blob_type == B_INT16:
        return payload_len == 2
    if blob_type == B_INT32:
        return payload_len == 4
    if blob_type == B_INT64:
        return payload_len == 8
    if blob_type == B_DOUBLE:
        return payload_len >= 8
    return blob_type <= B_BINARY


class Attrs:
    """Top-level attributes of one message body, parsed with a policy (wrong type = absent)."""

    __slots__ = ("_spans", "body")

    def __init__(self, body, policy=UBUSD_POLICY):
        self.body = body
        self._spans = {}
        for attr_id, _ext, start, end, nxt in iter_attrs(body):
            if attr_id >= ATTR_MAX:
                continue
            blob_type = policy.get(attr_id, B_UNSPEC)
            if _type_ok(blob_type, end - start, body, end):
                self._spans[attr_id] = (start, end, nxt)  # last valid one wins

    def __contains__(self, attr_id):
        return attr_id in self._spans

    def payload(self, attr_id):
        span = self._spans.get(attr_id)
        return None if span is None else bytes(self.body[span[0]:span[1]])

    def raw(self, attr_id):
        """The whole attribute (header, payload, padding) exactly as received."""
        span = self._spans.get(attr_id)
        return None if span is None else bytes(self.body[span[0] - 4:span[2]])

    def u32(self, attr_id):
        span = self._spans.get(attr_id)
        if span is None or span[1] - span[0] < 4:
            return None
        return _U32.unpack_from(self.body, span[0])[0]

    def i32(self, attr_id):
        value = self.u32(attr_id)
        return None if value is None else (value ^ 0x80000000) - 0x80000000

    def u8(self, attr_id):
        span = self._spans.get(attr_id)
        if span is None or span[1] <= span[0]:
            return None
        return self.body[span[0]]

    def string(self, attr_id):
        """bytes up to the first NUL (the policy already checked the terminator)."""
        payload = self.payload(attr_id)
        if payload is None:
            return None
        nul = payload.find(b"\0")
        return payload if nul < 0 else payload[:nul]


class FrameReader:
    """Split a byte stream into complete messages; enforce the size limit."""

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size=MAX_MSG):
        self._buf = bytearray()
        self.max_size = max_size

    def feed(self, data):
        """Append data; return a list of complete raw messages (bytes). Raises FrameError."""
        self._buf += data
        out = []
        buf = self._buf
        off = 0
        while len(buf) - off >= 12:
            raw_len = _U32.unpack_from(buf, off + 8)[0] & 0xFFFFFF
            if raw_len < 4 or ((raw_len + 3) & ~3) > self.max_size:
                raise FrameError(f"bad message length {raw_len}")
            total = 8 + raw_len
            if len(buf) - off < total:
                break
            out.append(bytes(buf[off:off + total]))
            off += total
        if off:
            del buf[:off]
        return out

    def pending(self):
        return len(self._buf)


def body_of(raw):
    """The attribute area of a complete message (payload of the id-0 blob)."""
    return memoryview(raw)[12:]


# -- blobmsg at the byte level (what ubusd itself needs) ---------------------------

BM_UNSPEC, BM_ARRAY, BM_TABLE, BM_STRING, BM_INT64, BM_INT32, BM_INT16, BM_INT8, BM_DOUBLE = range(9)
_BM_BLOB_TYPE = {
    BM_UNSPEC: B_BINARY, BM_STRING: B_STRING, BM_INT64: B_INT64, BM_INT32: B_INT32,
    BM_INT16: B_INT16, BM_INT8: B_INT8, BM_DOUBLE: B_DOUBLE,
}


def bm_hdrlen(namelen):
    return (2 + namelen + 1 + 3) & ~3


def bm_check(buf, off, available, name_required):
    """blobmsg_check_attr_len: is the attribute at `off` a valid blobmsg element?"""
    if available < 4:
        return False
    head = _U32.unpack_from(buf, off)[0]
    raw_len = head & 0xFFFFFF
    if raw_len < 4 or raw_len > available:
        return False
    plen = raw_len - 4
    value_start = off + 4
    if head & 0x80000000:
        if plen < 2:
            return False
        namelen = struct.unpack_from(">H", buf, off + 4)[0]
        if name_required and not namelen:
            return False
        hdr = bm_hdrlen(namelen)
        if plen < hdr or buf[off + 6 + namelen] != 0:
            return False
        value_start = off + 4 + hdr
    elif name_required:
        return False
    bm_type = (head >> 24) & 0x7F
    if bm_type > BM_DOUBLE:
        return False
    if bm_type in (BM_ARRAY, BM_TABLE):
        return True
    value_end = off + raw_len
    return _type_ok(_BM_BLOB_TYPE[bm_type], value_end - value_start, buf, value_end)


def bm_element(buf, off):
    """(type, name bytes, value_start, value_end) of a checked blobmsg element."""
    head = _U32.unpack_from(buf, off)[0]
    end = off + (head & 0xFFFFFF)
    if not head & 0x80000000:
        return (head >> 24) & 0x7F, None, off + 4, end
    namelen = struct.unpack_from(">H", buf, off + 4)[0]
    name = bytes(buf[off + 6:off + 6 + namelen])
    return (head >> 24) & 0x7F, name, off + 4 + bm_hdrlen(namelen), end


def bm_parse(buf, policy):
    """blobmsg_parse over a whole buffer: policy {name bytes: blobmsg type}.

    Returns {name: (value_start, value_end)} or None when a malformed element aborts
    the parse or the input is empty (slots found before that are then irrelevant to
    ubusd: every caller treats the failure like missing arguments). First occurrence wins.
    """
    if not buf:
        return None
    found = {}
    off, end = 0, len(buf)
    while end - off >= 4:
        if not bm_check(buf, off, end - off, False):
            return None
        head = _U32.unpack_from(buf, off)[0]
        padded = ((head & 0xFFFFFF) + 3) & ~3
        if head & 0x80000000:
            bm_type, name, vstart, vend = bm_element(buf, off)
            want = policy.get(name)
            if want is not None and name not in found and want in (BM_UNSPEC, bm_type):
                found[name] = (vstart, vend)
        off += padded
    return found


def bm_attr(bm_type, name, value):
    if isinstance(name, str):
        name = name.encode()
    nh = struct.pack(">H", len(name)) + name + b"\0"
    nh += b"\0" * (-len(nh) & 3)
    return attr(bm_type, nh + value, extended=True)


def bm_int32(name, value):
    return bm_attr(BM_INT32, name, _U32.pack(value & 0xFFFFFFFF))


def bm_string(name, text):
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    return bm_attr(BM_STRING, name, text + b"\0")


def u32_at(buf, off):
    return _U32.unpack_from(buf, off)[0]


def i32(value):
    return (value & 0xFFFFFFFF ^ 0x80000000) - 0x80000000
