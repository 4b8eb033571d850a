"""blobmsg's JSON text forms, as the `ubus` CLI reads and prints them.

`from_json` parses like json-c 0.16 + blobmsg_add_json_from_string; `to_json`
renders like blobmsg_format_json (compact) or blobmsg_format_json_indent(...,
0) (indent=True, what `ubus call` prints); `format_json`/`format_buffer`
render raw bytes exactly as libubox does. See pyprocd.wire.blobmsg, which
also answers to these names (imported on first use: the daemon never renders
JSON, so this code stays out of its memory).
"""

import math

from .blobmsg import (
    _EXT,
    ARRAY,
    BOOL,
    DOUBLE,
    ID_MASK,
    INT16,
    INT32,
    INT64,
    LEN_MASK,
    MAX_DEPTH,
    STRING,
    TABLE,
    UNSPEC,
    BlobError,
    Int16,
    Int64,
    _as_bytes,
    _element_error,
    _unpack_be16,
    _unpack_be32,
    _unpack_f64,
    _unpack_i16,
    _unpack_i32,
    _unpack_i64,
    _value_span,
    check_attr_len,
    pad4,
)


def from_json(text):
    """JSON text -> dict of typed values, as the ubus CLI (json-c + blobmsg_json) types it.

    Raises ValueError (a BlobError) for text json-c rejects or whose top
    level is not an object (the CLI's "Parsing message data failed").
    """
    from .jsonc import parse_object  # only the CLI path needs the parser

    return parse_object(text)


_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({8: "\\b", 9: "\\t", 10: "\\n", 13: "\\r", 34: '\\"', 92: "\\\\"})


def _quote(s):
    return '"' + s.translate(_ESCAPES) + '"'


def _format_double(x):
    if math.isnan(x):  # glibc prints the sign of a NaN
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return f"{x:f}"[:316]  # printf("%lf") into a 317-byte buffer


def to_json(value, indent=False):
    """Render like blobmsg_format_json (compact) or the `ubus` CLI's indented form.

    `value` is normally a decoded table (dict) or array (list); a scalar is
    rendered alone. bytes are taken as raw table attributes (see format_json).
    """
    parts = []
    _render(parts, value, 0 if indent else -1)
    return "".join(parts)


def _render(parts, value, level):
    t = type(value)
    if t is str:
        parts.append(_quote(value))
    elif t is dict:
        _render_list(parts, value.items(), level, True)
    elif t is bool:
        parts.append("true" if value else "false")
    elif t is int or t is Int64 or t is Int16:
        parts.append(str(int(value)))
    elif t is list or t is tuple:
        _render_list(parts, value, level, False)
    elif t is float:
        parts.append(_format_double(value))
    elif value is None:
        parts.append("null")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        _format_list(parts, b, 0, len(b), False, level)
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif isinstance(value, int):
        parts.append(str(int(value)))
    elif isinstance(value, str):
        parts.append(_quote(str(value)))
    elif isinstance(value, float):
        parts.append(_format_double(float(value)))
    elif isinstance(value, dict):
        _render_list(parts, value.items(), level, True)
    elif isinstance(value, (list, tuple)):
        _render_list(parts, value, level, False)
    else:
        raise BlobError(f"cannot render {type(value).__name__} as blobmsg JSON")


_SEPARATORS = ["\n" + "\t" * min(level, 16) for level in range(MAX_DEPTH + 2)]


def _separator(level):
    return _SEPARATORS[level]


def _render_list(parts, items, level, is_table):
    """level >= 0: indented at that level; compact levels count down from -1."""
    if abs(level) > MAX_DEPTH:
        raise BlobError(f"nesting deeper than {MAX_DEPTH} levels")
    parts.append("{" if is_table else "[")
    inner = level + 1 if level >= 0 else level - 1
    sep = _separator(inner) if level >= 0 else ""
    colon = ": " if level >= 0 else ":"
    parts.append(sep)
    first = True
    for item in items:
        if not first:
            parts.append(",")
            parts.append(sep)
        first = False
        if is_table:
            name, item = item
            if not isinstance(name, str):
                raise BlobError(f"table key must be a str, not {type(name).__name__}")
            name = name.split("\0", 1)[0]
            if name:  # libubox prints an empty-named member as a bare value
                parts.append(_quote(name))
                parts.append(colon)
        _render(parts, item, inner)
    if level >= 0:
        parts.append(_separator(level))
    parts.append("}" if is_table else "]")


def format_json(payload, indent=False, array=False):
    """Render raw blobmsg attributes exactly as libubox's blobmsg_format_json_list.

    `payload` is the value area of a table/array (e.g. the payload of
    UBUS_ATTR_DATA). Elements libubox rejects print nothing (their comma
    stays), iteration stops silently at an overrunning child.
    """
    b = _as_bytes(payload)
    parts = []
    _format_list(parts, b, 0, len(b), array, 0 if indent else -1)
    return "".join(parts)


def format_buffer(buf, indent=False):
    """blobmsg_format_json(head, true) on a whole blob_buf (head + children)."""
    b = _as_bytes(buf)
    if len(b) < 4:
        raise BlobError("buffer shorter than its head attribute")
    word = _unpack_be32(b, 0)[0]
    raw = word & LEN_MASK
    if raw < 4 or raw > len(b):
        raise BlobError(f"head length {raw} does not fit the {len(b)} bytes given")
    is_array = bool(word & _EXT) and (word & ID_MASK) >> 24 == ARRAY
    if word & _EXT and not check_attr_len(b, False, raw):
        raise BlobError("head attribute is not a valid blobmsg attribute")
    start, end = _value_span(b, 0, word)
    parts = []
    _format_list(parts, b, start, end, is_array, 0 if indent else -1)
    return "".join(parts)


def _format_list(parts, buf, pos, end, is_array, level):
    if abs(level) > MAX_DEPTH:
        raise BlobError(f"nesting deeper than {MAX_DEPTH} levels")
    parts.append("[" if is_array else "{")
    inner = level + 1 if level >= 0 else level - 1
    sep = _separator(inner) if level >= 0 else ""
    parts.append(sep)
    first = True
    while end - pos >= 4:
        word = _unpack_be32(buf, pos)[0]
        padded = pad4(word & LEN_MASK)
        if padded < 4 or padded > end - pos:
            break
        if not first:
            parts.append(",")
            parts.append(sep)
        first = False
        _format_element(parts, buf, pos, word, is_array, inner)
        pos += padded
    if level >= 0:
        parts.append(_separator(level))
    parts.append("]" if is_array else "}")


def _c_string(buf, start, end):
    """The C string at buf[start:] (bounded by `end`), decoded."""
    nul = buf.find(b"\0", start, end)
    return buf[start:nul if nul >= 0 else end].decode("utf-8", "surrogateescape")


_quoted_names = {}


def _quoted_name(raw):
    """The JSON text of name bytes `raw` ("" for an empty name), cached."""
    cut = raw.find(b"\0")
    name = (raw if cut < 0 else raw[:cut]).decode("utf-8", "surrogateescape")
    quoted = _quote(name) if name else ""
    if len(_quoted_names) > 4096:
        _quoted_names.clear()
    _quoted_names[raw] = quoted
    return quoted


def _format_element(parts, buf, pos, word, without_name, level):
    raw = word & LEN_MASK
    if _element_error(buf, pos, raw, False) is not None:
        return  # blobmsg_check_attr failed: libubox prints nothing
    if not without_name:
        if word & _EXT:  # the name is valid here: NUL-terminated at namelen
            raw_name = buf[pos + 6:pos + 6 + _unpack_be16(buf, pos + 4)[0]]
            quoted = _quoted_names.get(raw_name)
            if quoted is None:
                quoted = _quoted_name(raw_name)
        else:  # blobmsg_name() reads a name header even where there is none
            nul = buf.find(b"\0", pos + 6)
            quoted = _quoted_name(buf[pos + 6:nul if nul >= 0 else len(buf)])
        if quoted:
            parts.append(quoted)
            parts.append(": " if level >= 0 else ":")
    start, end = _value_span(buf, pos, word)
    btype = (word & ID_MASK) >> 24
    if btype == UNSPEC:
        parts.append("null")
    elif btype == BOOL:
        parts.append("true" if buf[start] else "false")
    elif btype == INT16:
        parts.append(str(_unpack_i16(buf, start)[0]))
    elif btype == INT32:
        parts.append(str(_unpack_i32(buf, start)[0]))
    elif btype == INT64:
        parts.append(str(_unpack_i64(buf, start)[0]))
    elif btype == DOUBLE:
        parts.append(_format_double(_unpack_f64(buf, start)[0]))
    elif btype == STRING:
        parts.append(_quote(_c_string(buf, start, end)))
    elif btype == ARRAY:
        _format_list(parts, buf, start, end, True, level)
    elif btype == TABLE:
        _format_list(parts, buf, start, end, False, level)
