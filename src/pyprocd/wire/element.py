"""blobmsg elements at the byte level: type ids, the name header, libubox's element check.

The part of blobmsg that the bus needs to build, check and read elements in
place (signatures, event arguments), without the codec and JSON around it:
the bus imports only this, and blobmsg (which re-exports all of it) is loaded
when something decodes or encodes values.
"""

import struct

from .blob import ATTR_EXTENDED, ID_MASK, LEN_MASK, BlobError
from .blob import check_type as blob_check_type

UNSPEC = 0
ARRAY = 1
TABLE = 2
STRING = 3
INT64 = 4
INT32 = 5
INT16 = 6
INT8 = 7
BOOL = INT8
DOUBLE = 8
TYPE_LAST = DOUBLE
TYPE_NAMES = {UNSPEC: "UNSPEC", ARRAY: "ARRAY", TABLE: "TABLE", STRING: "STRING",
              INT64: "INT64", INT32: "INT32", INT16: "INT16", INT8: "INT8", DOUBLE: "DOUBLE"}

# blobmsg type -> plain blob type used to check its value (blobmsg_check_attr_len).
_VALUE_BLOB_TYPE = (2, None, None, 3, 7, 6, 5, 4, 8)

_unpack_be32 = struct.Struct(">I").unpack_from
_unpack_be16 = struct.Struct(">H").unpack_from
_EXT = ATTR_EXTENDED
_STR_TAIL = (b"\0", b"\0\0\0\0", b"\0\0\0", b"\0\0")  # string NUL + padding, by len % 4

_name_cache = {}


def name_header(name):
    """The blobmsg name header for `name`: be16 length, name, NUL, zero padding."""
    hdr = _name_cache.get(name)
    if hdr is not None:
        return hdr
    if name is None:
        return b"\0\0\0\0"
    if not isinstance(name, str):
        raise BlobError(f"blobmsg name must be a str, not {type(name).__name__}")
    raw = name.encode("utf-8", "surrogateescape")
    nul = raw.find(b"\0")
    if nul >= 0:  # libubox takes the name with strlen()
        raw = raw[:nul]
    if len(raw) > 0xFFFF:
        raise BlobError(f"blobmsg name too long: {len(raw)} bytes (max 65535)")
    hdr = struct.pack(">H", len(raw)) + raw + _STR_TAIL[(len(raw) + 3) & 3]
    if len(_name_cache) > 4096:
        _name_cache.clear()
    _name_cache[name] = hdr
    return hdr


def _element_error(buf, pos, avail, name_required):
    """Why the element at `pos` fails blobmsg_check_attr_len, or None if it passes."""
    if avail < 4:
        return "truncated attribute header"
    word = _unpack_be32(buf, pos)[0]
    raw = word & LEN_MASK
    if raw < 4:
        return f"attribute length {raw} below the 4-byte header"
    if raw > avail:
        return f"attribute length {raw} exceeds the {avail} bytes available"
    payload_len = raw - 4
    btype = (word & ID_MASK) >> 24
    if word & _EXT:
        if payload_len < 2:
            return "extended attribute too short for a name header"
        namelen = _unpack_be16(buf, pos + 4)[0]
        if name_required and namelen == 0:
            return "unnamed element in a table"
        hdrlen = (namelen + 6) & ~3  # round_up_4(2 + namelen + 1)
        if payload_len < hdrlen:
            return "name runs past the end of the attribute"
        if buf[pos + 6 + namelen] != 0:
            return "name not NUL-terminated"
        vstart = pos + 4 + hdrlen
    else:
        if name_required:
            return "attribute without a name header"
        vstart = pos + 4
    if btype > TYPE_LAST:
        return f"unknown blobmsg type {btype}"
    blob_type = _VALUE_BLOB_TYPE[btype]
    if blob_type is not None and not blob_check_type(buf, blob_type, vstart, pos + raw):
        return f"bad {TYPE_NAMES[btype]} value of {pos + raw - vstart} bytes"
    return None


def check_attr_len(buf, name_required, available=None, pos=0):
    """libubox blobmsg_check_attr_len on the attribute at buf[pos:pos+available]."""
    if available is None:
        available = len(buf) - pos
    return _element_error(buf, pos, min(available, len(buf) - pos), name_required) is None


def _value_span(buf, pos, word):
    """(start, end) of the value area of the attribute at `pos` (header word `word`)."""
    end = pos + (word & LEN_MASK)
    if word & _EXT:
        return pos + 4 + ((_unpack_be16(buf, pos + 4)[0] + 6) & ~3), end
    return pos + 4, end


def element(buf, pos):
    """(type, name bytes or None if unnamed, value_start, value_end) of the element at `pos`.

    For an element that passed check_attr_len: the bus reads signatures and
    arguments in place with it.
    """
    word = _unpack_be32(buf, pos)[0]
    vstart, vend = _value_span(buf, pos, word)
    name = bytes(buf[pos + 6:pos + 6 + _unpack_be16(buf, pos + 4)[0]]) if word & _EXT else None
    return (word & ID_MASK) >> 24, name, vstart, vend
