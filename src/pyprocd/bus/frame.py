"""Raw ubus framing for the bus layer: ubusd's parsing rules on raw bytes.

The wire facts (message/attribute ids, status codes, attribute encoding and
iteration, type checks, header packing, the stream framer) live in
pyprocd.wire; this module gives them the short names the bus code uses and
adds only what a broker and a byte-exact client need beyond a codec: ubusd's
and libubus's policy parsing of raw top-level attributes (an attribute of the
wrong type is *absent*, the last duplicate wins, ids beyond the table are
ignored), read in place so that bodies and DATA attributes can be forwarded
verbatim, without a decode/encode round trip that could change a byte; and
the few blobmsg builders/parsers ubusd itself runs on raw bytes.
"""

import struct

from pyprocd.wire.blob import BINARY as B_BINARY
from pyprocd.wire.blob import DOUBLE as B_DOUBLE
from pyprocd.wire.blob import INT8 as B_INT8
from pyprocd.wire.blob import INT16 as B_INT16
from pyprocd.wire.blob import INT32 as B_INT32
from pyprocd.wire.blob import INT64 as B_INT64
from pyprocd.wire.blob import NESTED as B_NESTED
from pyprocd.wire.blob import STRING as B_STRING
from pyprocd.wire.blob import UNSPEC as B_UNSPEC
from pyprocd.wire.blob import BlobError as FrameError
from pyprocd.wire.blob import check_type, iter_attrs
from pyprocd.wire.blob import encode_attr as attr
from pyprocd.wire.element import ARRAY as BM_ARRAY
from pyprocd.wire.element import DOUBLE as BM_DOUBLE
from pyprocd.wire.element import INT8 as BM_INT8
from pyprocd.wire.element import INT16 as BM_INT16
from pyprocd.wire.element import INT32 as BM_INT32
from pyprocd.wire.element import INT64 as BM_INT64
from pyprocd.wire.element import STRING as BM_STRING
from pyprocd.wire.element import TABLE as BM_TABLE
from pyprocd.wire.element import UNSPEC as BM_UNSPEC
from pyprocd.wire.element import check_attr_len, name_header
from pyprocd.wire.element import element as bm_element
from pyprocd.wire.ubusmsg import (  # message types, status codes and the rest by their wire names
    ADD_OBJECT,
    ATTR_MAX,
    CONNECTION_FAILED,
    DATA,
    DEFAULT_SOCKET,
    HELLO,
    INVALID_ARGUMENT,
    INVALID_COMMAND,
    INVOKE,
    LOOKUP,
    METHOD_NOT_FOUND,
    MONITOR,
    NO_DATA,
    NO_MEMORY,
    NOT_FOUND,
    NOT_SUPPORTED,
    NOTIFY,
    OK,
    PARSE_ERROR,
    PERMISSION_DENIED,
    PING,
    REMOVE_OBJECT,
    STATUS,
    STATUS_TEXT,
    SUBSCRIBE,
    SYSTEM_ERROR,
    TIMEOUT,
    UNKNOWN_ERROR,
    UNSUBSCRIBE,
    FrameReader,
    header,
    strerror,
)
from pyprocd.wire.ubusmsg import ATTR_ACTIVE as A_ACTIVE
from pyprocd.wire.ubusmsg import ATTR_DATA as A_DATA
from pyprocd.wire.ubusmsg import ATTR_GROUP as A_GROUP
from pyprocd.wire.ubusmsg import ATTR_METHOD as A_METHOD
from pyprocd.wire.ubusmsg import ATTR_NO_REPLY as A_NO_REPLY
from pyprocd.wire.ubusmsg import ATTR_OBJID as A_OBJID
from pyprocd.wire.ubusmsg import ATTR_OBJPATH as A_OBJPATH
from pyprocd.wire.ubusmsg import ATTR_OBJTYPE as A_OBJTYPE
from pyprocd.wire.ubusmsg import ATTR_SIGNATURE as A_SIGNATURE
from pyprocd.wire.ubusmsg import ATTR_STATUS as A_STATUS
from pyprocd.wire.ubusmsg import ATTR_SUBSCRIBERS as A_SUBSCRIBERS
from pyprocd.wire.ubusmsg import ATTR_TARGET as A_TARGET
from pyprocd.wire.ubusmsg import ATTR_USER as A_USER
from pyprocd.wire.ubusmsg import MAX_MESSAGE_LEN as MAX_MSG
from pyprocd.wire.ubusmsg import MONITOR_CLIENT as M_CLIENT
from pyprocd.wire.ubusmsg import MONITOR_DATA as M_DATA
from pyprocd.wire.ubusmsg import MONITOR_PEER as M_PEER
from pyprocd.wire.ubusmsg import MONITOR_SEND as M_SEND
from pyprocd.wire.ubusmsg import MONITOR_SEQ as M_SEQ
from pyprocd.wire.ubusmsg import MONITOR_TYPE as M_TYPE
from pyprocd.wire.ubusmsg import pack_frame as message

__all__ = [  # the bus's names for the wire facts above, and this module's own
    "ADD_OBJECT", "ATTR_MAX", "A_ACTIVE", "A_DATA", "A_GROUP", "A_METHOD", "A_NO_REPLY",
    "A_OBJID", "A_OBJPATH", "A_OBJTYPE", "A_SIGNATURE", "A_STATUS", "A_SUBSCRIBERS",
    "A_TARGET", "A_USER", "BM_ARRAY", "BM_DOUBLE", "BM_INT8", "BM_INT16", "BM_INT32",
    "BM_INT64", "BM_STRING", "BM_TABLE", "BM_UNSPEC", "B_BINARY", "B_DOUBLE", "B_INT8",
    "B_INT16", "B_INT32", "B_INT64", "B_NESTED", "B_STRING", "B_UNSPEC", "CLIENT_POLICY",
    "CONNECTION_FAILED", "DATA", "DEFAULT_SOCKET", "HELLO", "INVALID_ARGUMENT",
    "INVALID_COMMAND", "INVOKE", "LOOKUP", "MAX_MSG", "METHOD_NOT_FOUND", "MONITOR",
    "M_CLIENT", "M_DATA", "M_PEER", "M_SEND", "M_SEQ", "M_TYPE", "NOTIFY", "NOT_FOUND",
    "NOT_SUPPORTED", "NO_DATA", "NO_MEMORY", "OK", "PARSE_ERROR", "PERMISSION_DENIED", "PING",
    "REMOVE_OBJECT", "STATUS", "STATUS_TEXT", "SUBSCRIBE", "SYSTEM_ERROR", "TIMEOUT",
    "UBUSD_POLICY", "UNKNOWN_ERROR", "UNSUBSCRIBE", "Attrs", "FrameError", "FrameReader",
    "attr", "attr_str", "attr_u8", "attr_u32", "bm_attr", "bm_check", "bm_element",
    "bm_int32", "bm_parse", "bm_string", "body_of", "check_type", "header", "i32",
    "iter_attrs", "message", "strerror", "u32_at",
]

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

_U32 = struct.Struct(">I")


# -- building ------------------------------------------------------------------


def attr_u32(attr_id, value):
    return attr(attr_id, _U32.pack(value & 0xFFFFFFFF))


def attr_str(attr_id, text):
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    return attr(attr_id, text + b"\0")


def attr_u8(attr_id, value):
    return attr(attr_id, bytes((value & 0xFF,)))


# -- parsing -------------------------------------------------------------------


class Attrs:
    """Top-level attributes of one message body, parsed with a policy (wrong type = absent)."""

    __slots__ = ("_spans", "body")

    def __init__(self, body, policy=UBUSD_POLICY):
        self.body = body
        self._spans = spans = {}
        expected = policy.get  # locals: the broker parses every message it receives
        for attr_id, _ext, start, end, nxt in iter_attrs(body):
            if attr_id >= ATTR_MAX or end < start:  # raw length < 4: ignored (spec §1.4)
                continue
            if check_type(body, expected(attr_id, B_UNSPEC), start, end):
                spans[attr_id] = (start, end, nxt)  # last valid one wins

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
        return None if value is None else i32(value)

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


def body_of(raw):
    """The attribute area of a complete message (payload of the id-0 blob)."""
    return memoryview(raw)[12:]


# -- blobmsg at the byte level (what ubusd itself needs) ---------------------------


def bm_check(buf, off, available, name_required):
    """blobmsg_check_attr_len: is the attribute at `off` a valid blobmsg element?"""
    return check_attr_len(buf, name_required, available, off)


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
        if not check_attr_len(buf, False, end - off, off):
            return None
        bm_type, name, vstart, vend = bm_element(buf, off)
        if name is not None:
            want = policy.get(name)
            if want is not None and name not in found and want in (BM_UNSPEC, bm_type):
                found[name] = (vstart, vend)
        off += ((_U32.unpack_from(buf, off)[0] & 0xFFFFFF) + 3) & ~3
    return found


def bm_attr(bm_type, name, value):
    """A named blobmsg attribute around an already encoded `value`."""
    return attr(bm_type, name_header(name) + value, extended=True)


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
