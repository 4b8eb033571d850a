"""blob: libubox's tagged binary attributes (the container under blobmsg and ubus).

    >>> from pyprocd.wire import blob
    >>> blob.encode_attr(2, b"test\\0")              # plain attribute id 2, payload
    b'\\x02\\x00\\x00\\ttest\\x00\\x00\\x00\\x00'
    >>> list(blob.iter_attrs(b"\\x03\\x00\\x00\\x08\\x00\\x00\\x00\\x07"))
    [(3, False, 4, 8, 8)]

Layout (big-endian regardless of host): one be32 header word
``extended(1 bit) | id(7 bits) | raw_len(24 bits)``, raw_len counting the
4-byte header and the payload but not the zero padding to the next multiple
of 4. Containers hold their children back to back, each padded; a
container's raw_len counts that padding.

Everything in this package that rejects untrusted bytes raises `BlobError`
(a ValueError) and nothing else.
"""

import struct

__all__ = [
    "ATTR_EXTENDED",
    "BINARY",
    "DOUBLE",
    "ID_MASK",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "LEN_MASK",
    "MAX_LEN",
    "NESTED",
    "STRING",
    "UNSPEC",
    "BlobError",
    "check_type",
    "encode_attr",
    "iter_attrs",
    "pad4",
]


class BlobError(ValueError):
    """Malformed blob/blobmsg/ubus bytes, or a value that cannot be encoded."""


ATTR_EXTENDED = 0x80000000
ID_MASK = 0x7F000000
ID_SHIFT = 24
LEN_MASK = 0x00FFFFFF
MAX_LEN = LEN_MASK  # the length field is 24 bits; there is no longer form

# Plain blob types (`BLOB_ATTR_*`): only used to validate payloads against a policy.
UNSPEC = 0
NESTED = 1
BINARY = 2
STRING = 3
INT8 = 4
INT16 = 5
INT32 = 6
INT64 = 7
DOUBLE = 8

_BE32 = struct.Struct(">I")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # zero bytes to add after n % 4 bytes


def pad4(n):
    """`n` rounded up to a multiple of 4 (libubox's padded length)."""
    return (n + 3) & ~3


def encode_attr(attr_id, payload, extended=False):
    """One attribute: header, payload, zero padding (the padding is not counted in raw_len)."""
    raw_len = 4 + len(payload)
    if raw_len > MAX_LEN:
        raise BlobError(f"attribute too long: {raw_len} bytes (max {MAX_LEN})")
    if not 0 <= attr_id <= 127:
        raise BlobError(f"attribute id {attr_id} out of range 0..127")
    word = (ATTR_EXTENDED if extended else 0) | (attr_id << ID_SHIFT) | raw_len
    return _BE32.pack(word) + bytes(payload) + _PAD[raw_len & 3]


def iter_attrs(buf, start=0, end=None):
    """Yield (id, extended, payload_start, payload_end, next_offset) for buf[start:end].

    Offsets, not slices: the bus forwards attributes verbatim and parses most
    of them in place, so a copy or memoryview per attribute would be waste.
    Iteration follows libubox (spec §1.4): it stops silently at the first
    attribute whose *padded* length is < 4 or runs past `end`, and ignores
    trailing bytes. An attribute with raw length 1..3 is still yielded (its
    payload_end < payload_start): policy parsers ignore it, blobmsg checks
    reject it, as libubox does.
    """
    if end is None:
        end = len(buf)
    # Literal masks (the header word layout above), not the named globals: the broker runs
    # this loop for every attribute it receives and the lookups were measurable there.
    pos = start
    while end - pos >= 4:
        word = _BE32.unpack_from(buf, pos)[0]
        raw_len = word & 0xFFFFFF
        padded = (raw_len + 3) & ~3
        if padded < 4 or padded > end - pos:
            return
        yield (word >> 24) & 0x7F, bool(word & 0x80000000), pos + 4, pos + raw_len, pos + padded
        pos += padded


def check_type(buf, blob_type, start=0, end=None):
    """libubox `blob_check_type`: does the payload buf[start:end] fit plain blob type `blob_type`?

    Offsets so that the bus checks payloads in place (no slice per attribute).
    """
    if end is None:
        end = len(buf)
    n = end - start
    if blob_type == STRING:
        return n >= 1 and buf[end - 1] == 0
    if blob_type == INT32:
        return n == 4
    if 0 <= blob_type <= BINARY:  # UNSPEC, NESTED, BINARY: any payload
        return True
    if blob_type == INT8:
        return n == 1
    if blob_type == INT16:
        return n == 2
    if blob_type == INT64:
        return n == 8
    if blob_type == DOUBLE:
        return n >= 8
    return False
