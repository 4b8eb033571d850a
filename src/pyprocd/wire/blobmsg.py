r"""blobmsg: libubox's named, typed values (what travels in UBUS_ATTR_DATA).

    >>> from pyprocd.wire import blobmsg
    >>> payload = blobmsg.encode_table({"name": "dnsmasq", "verbose": True})
    >>> blobmsg.decode_table(payload)
    {'name': 'dnsmasq', 'verbose': True}
    >>> msg = blobmsg.from_json('{"n": 5, "big": 4294967296, "d": 1.5}')
    >>> msg
    {'n': 5, 'big': 4294967296, 'd': 1.5}
    >>> type(msg["big"]).__name__                  # as the ubus CLI types it
    'Int64'
    >>> blobmsg.to_json(msg)
    '{"n":5,"big":4294967296,"d":1.500000}'
    >>> blobmsg.to_json({"a": [1]}, indent=True)  # what `ubus call` prints
    '{\n\t"a": [\n\t\t1\n\t]\n}'

Python values <-> blobmsg types:

=========  ==========================================  ===========================
type (id)  decoded as                                  encoded from
=========  ==========================================  ===========================
UNSPEC 0   None (any payload)                          None
ARRAY 1    list (element names ignored)                list, tuple
TABLE 2    dict, wire order kept; a repeated name      dict (str keys)
           keeps its FIRST value (as blobmsg_parse)
STRING 3   str, up to the first NUL; bytes that are    str (cut at a NUL, as
           not UTF-8 are kept as surrogate escapes     libubox's strlen does)
INT64 4    types.Int64                                 Int64, or an int that does
                                                       not fit INT32
INT32 5    int (signed)                                int in [-2**31, 2**31-1]
INT16 6    types.Int16                                 Int16
INT8 7     bool (any non-zero byte is True); BOOL      bool
           and INT8 are one type id and libubox
           renders it as true/false, so bool it is
DOUBLE 8   float                                       float
=========  ==========================================  ===========================

Decoding untrusted bytes (`decode_table`, `decode_array`) validates every
element exactly like libubox's `blobmsg_check_attr_len` (name header, NUL
after the name, type id <= 8, exact payload size per type, NUL-terminated
strings) and raises `BlobError` for a bad element. By default it is stricter
than libubox in three places, where libubox silently drops data: a child
running past its container or stray trailing bytes (libubox stops iterating),
an attribute without name header inside a table/array (blobmsg_parse skips
it), and nesting deeper than MAX_DEPTH (libubox recurses without limit).
`strict=False` gives libubox's silent behaviour for the first two.

JSON: `from_json` parses like json-c 0.16 + blobmsg_add_json_from_string (the
`ubus` CLI); `to_json` renders like blobmsg_format_json (compact) or
blobmsg_format_json_indent(..., 0) (indent=True, what `ubus call` prints),
including its quirks (doubles as %lf, `{1}` for an empty key). `format_json`
renders raw bytes exactly as libubox does, invalid elements included.
Strings may hold surrogate escapes (non-UTF-8 bytes): write the text with
``.encode("utf-8", "surrogateescape")`` to get libubox's bytes back.
"""

import struct

from .blob import ATTR_EXTENDED, ID_MASK, LEN_MASK, MAX_LEN, BlobError, pad4
from .element import (  # type ids, name header and element check: the light part the bus uses
    _STR_TAIL,
    ARRAY,
    BOOL,
    DOUBLE,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    TABLE,
    TYPE_NAMES,
    UNSPEC,
    _element_error,
    _name_cache,
    _value_span,
    check_attr_len,
    element,
    name_header,
)
from .types import Int16, Int64

__all__ = [
    "ARRAY",
    "BOOL",
    "DOUBLE",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "MAX_DEPTH",
    "STRING",
    "TABLE",
    "TYPE_NAMES",
    "UNSPEC",
    "BlobError",
    "check_array_len",
    "check_attr",
    "check_attr_len",
    "decode_array",
    "decode_buffer",
    "decode_table",
    "element",
    "encode_array",
    "encode_attr",
    "encode_buffer",
    "encode_table",
    "name_header",
]


MAX_DEPTH = 64  # far above json-c's 32; bounds Python recursion on hostile input

_BE32 = struct.Struct(">I")
_unpack_be32 = _BE32.unpack_from
_unpack_be16 = struct.Struct(">H").unpack_from
_unpack_i32 = struct.Struct(">i").unpack_from
_unpack_i16 = struct.Struct(">h").unpack_from
_unpack_i64 = struct.Struct(">q").unpack_from
_unpack_f64 = struct.Struct(">d").unpack_from
_pack_into_be32 = _BE32.pack_into
_pack_hdr = _BE32.pack
_pack_i32 = struct.Struct(">i").pack
_pack_i16 = struct.Struct(">h").pack
_pack_i64 = struct.Struct(">q").pack
_pack_f64 = struct.Struct(">d").pack

_EXT = ATTR_EXTENDED
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


# ---------------------------------------------------------------- encoding


def _put(out, hdr, value, depth):
    """Append one blobmsg attribute (name header `hdr`, `value`) to bytearray `out`."""
    t = type(value)
    if t is str:
        data = value.encode("utf-8", "surrogateescape")
        if b"\0" in data:  # libubox stores strings with strlen()
            data = data[:data.find(b"\0")]
        raw = 4 + len(hdr) + len(data) + 1
        if raw > MAX_LEN:
            raise BlobError(f"string too long for a blob attribute ({len(data)} bytes)")
        out += _pack_hdr(0x83000000 | raw)
        out += hdr
        out += data
        out += _STR_TAIL[raw & 3]
    elif t is bool:
        out += _pack_hdr(0x87000005 + len(hdr))
        out += hdr
        out += b"\1\0\0\0" if value else b"\0\0\0\0"
    elif t is int:
        if INT32_MIN <= value <= INT32_MAX:
            out += _pack_hdr(0x85000008 + len(hdr))
            out += hdr
            out += _pack_i32(value)
        else:
            _put_int64(out, hdr, value)
    elif t is dict:
        _put_container(out, 0x82000000, hdr, value, depth)
    elif t is EncodedTable:
        _put_encoded(out, hdr, value, depth)
    elif t is list or t is tuple:
        _put_container(out, 0x81000000, hdr, value, depth)
    elif t is float:
        out += _pack_hdr(0x8800000C + len(hdr))
        out += hdr
        out += _pack_f64(value)
    elif value is None:
        out += _pack_hdr(0x80000004 + len(hdr))
        out += hdr
    elif t is Int64:
        _put_int64(out, hdr, value)
    elif t is Int16:
        if not -0x8000 <= value <= 0x7FFF:
            raise BlobError(f"Int16 value {int(value)} out of range")
        out += _pack_hdr(0x86000006 + len(hdr))
        out += hdr
        out += _pack_i16(value) + b"\0\0"
    else:
        _put_other(out, hdr, value, depth)


class EncodedTable(dict):
    """A table that keeps its encoding: encoded the first time, copied verbatim
    by every later encode under the same name at the same depth. Whoever holds
    one replaces it when its content changes, never edits it."""

    __slots__ = ("_blob",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._blob = None  # (name header, depth, the attribute's bytes)


def _put_encoded(out, hdr, value, depth):
    blob = value._blob
    if blob is not None and blob[0] == hdr and blob[1] == depth:
        out += blob[2]
        return
    start = len(out)
    _put_container(out, 0x82000000, hdr, value, depth)
    value._blob = (hdr, depth, bytes(out[start:]))


def _put_int64(out, hdr, value):
    if not INT64_MIN <= value <= INT64_MAX:
        raise BlobError(f"integer {int(value)} does not fit in INT64")
    out += _pack_hdr(0x8400000C + len(hdr))
    out += hdr
    out += _pack_i64(value)


def _put_other(out, hdr, value, depth):
    """Subclasses of the supported types (e.g. an IntEnum, an OrderedDict)."""
    if isinstance(value, bool):
        _put(out, hdr, bool(value), depth)
    elif isinstance(value, Int64):
        _put_int64(out, hdr, value)
    elif isinstance(value, Int16):
        _put(out, hdr, Int16(value), depth)
    elif isinstance(value, int):
        _put(out, hdr, int(value), depth)
    elif isinstance(value, str):
        _put(out, hdr, str(value), depth)
    elif isinstance(value, float):
        _put(out, hdr, float(value), depth)
    elif isinstance(value, dict):
        _put_container(out, 0x82000000, hdr, value, depth)
    elif isinstance(value, (list, tuple)):
        _put_container(out, 0x81000000, hdr, value, depth)
    else:
        raise BlobError(f"cannot encode {type(value).__name__} as blobmsg")


def _put_container(out, word, hdr, value, depth):
    if depth >= MAX_DEPTH:
        raise BlobError(f"nesting deeper than {MAX_DEPTH} levels")
    start = len(out)
    out += b"\0\0\0\0"
    out += hdr
    depth += 1
    if word == 0x82000000:
        cached = _name_cache.get
        for key, item in value.items():
            _put(out, cached(key) or name_header(key), item, depth)
    else:
        for item in value:
            _put(out, b"\0\0\0\0", item, depth)
    raw = len(out) - start
    if raw > MAX_LEN:
        raise BlobError(f"container too long for a blob attribute ({raw} bytes)")
    _pack_into_be32(out, start, word | raw)


def encode_attr(name, value):
    """One blobmsg attribute named `name` ("" or None: unnamed, as array elements are)."""
    out = bytearray()
    _put(out, name_header(name), value, 0)
    return bytes(out)


def encode_table(d):
    """The attributes of a table payload: what goes inside UBUS_ATTR_DATA."""
    if not isinstance(d, dict):
        raise BlobError(f"a blobmsg table is a dict, not {type(d).__name__}")
    out = bytearray()
    for key, item in d.items():
        _put(out, name_header(key), item, 1)
    return bytes(out)


def encode_array(items):
    """The attributes of an array payload (unnamed elements)."""
    out = bytearray()
    for item in items:
        _put(out, b"\0\0\0\0", item, 1)
    return bytes(out)


def encode_buffer(d, head_id=0):
    """A whole blob_buf: a plain head attribute (id `head_id`) holding the table of `d`.

    head_id 0 is what blobmsg_add_json_from_string and the ubus CLI produce;
    2 (TABLE) is what blobmsg_buf_init gives.
    """
    payload = encode_table(d)
    if 4 + len(payload) > MAX_LEN:
        raise BlobError("table too long for a blob buffer")
    return _pack_hdr((head_id << 24) | (4 + len(payload))) + payload


# ---------------------------------------------------------------- decoding


def check_attr(buf, name_required, pos=0):
    """libubox blobmsg_check_attr: check_attr_len against the attribute's own raw length."""
    if len(buf) - pos < 4:
        return False
    raw = _unpack_be32(buf, pos)[0] & LEN_MASK
    if raw > len(buf) - pos:
        return False  # libubox would read past the buffer; callers check the length first
    return check_attr_len(buf, name_required, raw, pos)


def check_array_len(buf, elem_type=UNSPEC, available=None, pos=0):
    """libubox blobmsg_check_array_len: number of valid children, or -1.

    One level deep only; iteration stops silently at a child that overruns
    the container, as in libubox.
    """
    if available is None:
        available = len(buf) - pos
    if not check_attr_len(buf, False, available, pos):
        return -1
    word = _unpack_be32(buf, pos)[0]
    btype = (word & ID_MASK) >> 24
    if btype not in (ARRAY, TABLE):
        return -1
    vstart, vend = _value_span(buf, pos, word)
    count = 0
    p = vstart
    while vend - p >= 4:
        padded = pad4(_unpack_be32(buf, p)[0] & LEN_MASK)
        if padded < 4 or padded > vend - p:
            break
        child = _unpack_be32(buf, p)[0]
        if elem_type != UNSPEC and (child & ID_MASK) >> 24 != elem_type:
            return -1
        if _element_error(buf, p, vend - p, btype == TABLE) is not None:
            return -1
        count += 1
        p += padded
    return count


_decoded_names = {}


def _name_from(raw):
    """Decoded name for the name bytes `raw` (cached: the same keys come again and again)."""
    name = _decoded_names.get(raw)
    if name is None:
        cut = raw.find(b"\0")  # C readers see the name up to its first NUL
        name = (raw if cut < 0 else raw[:cut]).decode("utf-8", "surrogateescape")
        if len(_decoded_names) > 4096:
            _decoded_names.clear()
        _decoded_names[raw] = name
    return name


def _decode_list(buf, pos, end, is_table, strict, depth):
    """Decode the children in buf[pos:end] into a dict (table) or a list (array).

    One loop with the scalar types inline: this is the hot path of every
    ubus call (a 1000-instance `service list` reply holds ~80000 elements).
    """
    if depth > MAX_DEPTH:
        raise BlobError(f"nesting deeper than {MAX_DEPTH} levels")
    result = {} if is_table else []
    unpack_be32, unpack_be16, cached_name = _unpack_be32, _unpack_be16, _decoded_names.get
    while pos < end:
        avail = end - pos
        if avail < 4:
            if strict:
                raise BlobError(f"{avail} stray bytes after the last attribute")
            break
        word = unpack_be32(buf, pos)[0]
        raw = word & 0xFFFFFF
        padded = (raw + 3) & ~3
        if padded > avail or raw == 0:
            if strict:
                raise BlobError(f"attribute of length {raw} runs past its container "
                                f"({avail} bytes left)")
            break
        if word < 0x80000000 or raw < 6:  # no name header, or too short for one
            _not_blobmsg(buf, pos, word, avail, strict)
            pos += padded
            continue
        namelen = unpack_be16(buf, pos + 4)[0]
        vstart = pos + 4 + ((namelen + 6) & ~3)
        vend = pos + raw
        n = vend - vstart
        if n < 0 or buf[pos + 6 + namelen] != 0:
            raise BlobError(_element_error(buf, pos, avail, False) or "bad name header")
        btype = word >> 24 & 0x7F
        if btype == STRING:
            if n < 1 or buf[vend - 1] != 0:
                raise BlobError("STRING value not NUL-terminated")
            value = buf[vstart:buf.find(b"\0", vstart, vend)].decode("utf-8", "surrogateescape")
        elif btype == INT32:
            if n != 4:
                raise BlobError(f"INT32 value of {n} bytes")
            value = _unpack_i32(buf, vstart)[0]
        elif btype == TABLE:
            value = _decode_list(buf, vstart, vend, True, strict, depth + 1)
        elif btype == INT8:
            if n != 1:
                raise BlobError(f"INT8/BOOL value of {n} bytes")
            value = buf[vstart] != 0
        elif btype == ARRAY:
            value = _decode_list(buf, vstart, vend, False, strict, depth + 1)
        else:
            value = _decode_rare(buf, btype, vstart, n)
        if is_table:
            raw_name = buf[pos + 6:pos + 6 + namelen]
            name = cached_name(raw_name)
            if name is None:
                name = _name_from(raw_name)
            if name not in result:  # first occurrence wins, as in blobmsg_parse
                result[name] = value
        else:
            result.append(value)
        pos += padded
    return result


def _not_blobmsg(buf, pos, word, avail, strict):
    """An element without a valid name header: an error, or skipped like blobmsg_parse."""
    err = _element_error(buf, pos, avail, False)
    if err:
        raise BlobError(err)
    if word & _EXT:
        raise BlobError("bad name header")
    if strict:
        raise BlobError("attribute without a name header inside a blobmsg container")


def _decode_rare(buf, btype, vstart, n):
    """INT64, DOUBLE, INT16, UNSPEC values (the other types are decoded inline)."""
    if btype == INT64:
        if n != 8:
            raise BlobError(f"INT64 value of {n} bytes")
        return Int64(_unpack_i64(buf, vstart)[0])
    if btype == DOUBLE:
        if n < 8:
            raise BlobError(f"DOUBLE value of {n} bytes")
        return _unpack_f64(buf, vstart)[0]
    if btype == INT16:
        if n != 2:
            raise BlobError(f"INT16 value of {n} bytes")
        return Int16(_unpack_i16(buf, vstart)[0])
    if btype == UNSPEC:
        return None
    raise BlobError(f"unknown blobmsg type {btype}")


def _as_bytes(b):
    if type(b) is bytes:
        return b
    if isinstance(b, (bytearray, memoryview)):
        return bytes(b)
    raise BlobError(f"expected bytes, not {type(b).__name__}")


def decode_table(b, strict=True):
    """Decode the attributes of a table payload (e.g. UBUS_ATTR_DATA) into a dict."""
    b = _as_bytes(b)
    return _decode_list(b, 0, len(b), True, strict, 1)


def decode_array(b, strict=True):
    """Decode the attributes of an array payload into a list."""
    b = _as_bytes(b)
    return _decode_list(b, 0, len(b), False, strict, 1)


def decode_buffer(b, strict=True):
    """Decode a whole blob_buf (head attribute + table), as `encode_buffer` makes."""
    b = _as_bytes(b)
    if len(b) < 4:
        raise BlobError("buffer shorter than its head attribute")
    raw = _unpack_be32(b, 0)[0] & LEN_MASK
    if raw < 4 or raw > len(b):
        raise BlobError(f"head length {raw} does not fit the {len(b)} bytes given")
    if strict and pad4(raw) < len(b):
        raise BlobError(f"{len(b) - raw} stray bytes after the head attribute")
    return _decode_list(b, 4, raw, True, strict, 1)


# The JSON text forms live in blobjson (with `math`): the daemon never renders
# JSON, and their code would cost it memory for its whole life.
_JSON_NAMES = ("from_json", "to_json", "format_json", "format_buffer")


def __getattr__(name):
    if name in _JSON_NAMES:
        from pyprocd.wire import blobjson

        return getattr(blobjson, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
