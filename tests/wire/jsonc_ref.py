"""The real json-c (libjson-c.so.5, ctypes) as a reference for pyprocd.wire.jsonc.

`reference_parse(text)` returns what blobmsg_add_json_from_string would
encode, as the encode_table() bytes of the typed values, or None where the
ubus CLI fails. Typing follows libubox's blobmsg_json: int64 from
json_object_get_int64 -> INT32 when it fits else INT64; strings and keys as
C strings (cut at a NUL). Test-only: the daemon never loads json-c.
"""

import ctypes
import ctypes.util

from pyprocd.wire import blobmsg
from pyprocd.wire.types import Int64

_LIB_NAMES = ("libjson-c.so.5", ctypes.util.find_library("json-c"))


def _load():
    for name in _LIB_NAMES:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if hasattr(lib, "json_c_version") and hasattr(lib, "json_object_iter_begin"):
            return lib
    return None


class _Iter(ctypes.Structure):
    _fields_ = [("opaque", ctypes.c_void_p)]


LIB = _load()
if LIB is not None:
    P = ctypes.c_void_p
    LIB.json_c_version.restype = ctypes.c_char_p
    LIB.json_tokener_parse.restype = P
    LIB.json_tokener_parse.argtypes = [ctypes.c_char_p]
    LIB.json_object_put.argtypes = [P]
    LIB.json_object_get_type.argtypes = [P]
    LIB.json_object_get_boolean.argtypes = [P]
    LIB.json_object_get_double.argtypes = [P]
    LIB.json_object_get_double.restype = ctypes.c_double
    LIB.json_object_get_int64.argtypes = [P]
    LIB.json_object_get_int64.restype = ctypes.c_int64
    LIB.json_object_get_string.argtypes = [P]
    LIB.json_object_get_string.restype = ctypes.c_char_p
    LIB.json_object_array_length.argtypes = [P]
    LIB.json_object_array_length.restype = ctypes.c_size_t
    LIB.json_object_array_get_idx.argtypes = [P, ctypes.c_size_t]
    LIB.json_object_array_get_idx.restype = P
    LIB.json_object_iter_begin.argtypes = [P]
    LIB.json_object_iter_begin.restype = _Iter
    LIB.json_object_iter_end.argtypes = [P]
    LIB.json_object_iter_end.restype = _Iter
    LIB.json_object_iter_next.argtypes = [ctypes.POINTER(_Iter)]
    LIB.json_object_iter_equal.argtypes = [ctypes.POINTER(_Iter), ctypes.POINTER(_Iter)]
    LIB.json_object_iter_equal.restype = ctypes.c_int
    LIB.json_object_iter_peek_name.argtypes = [ctypes.POINTER(_Iter)]
    LIB.json_object_iter_peek_name.restype = ctypes.c_char_p
    LIB.json_object_iter_peek_value.argtypes = [ctypes.POINTER(_Iter)]
    LIB.json_object_iter_peek_value.restype = P

VERSION = LIB.json_c_version().decode() if LIB is not None else None

_NULL, _BOOLEAN, _DOUBLE, _INT, _OBJECT, _ARRAY, _STRING = range(7)


def _text(raw):
    return raw.decode("utf-8", "surrogateescape")


def _convert(obj):
    if not obj:
        return None  # json-c represents null as a NULL pointer
    kind = LIB.json_object_get_type(obj)
    if kind == _BOOLEAN:
        return bool(LIB.json_object_get_boolean(obj))
    if kind == _DOUBLE:
        return LIB.json_object_get_double(obj)
    if kind == _INT:
        value = LIB.json_object_get_int64(obj)
        return value if -(1 << 31) <= value < (1 << 31) else Int64(value)
    if kind == _STRING:
        return _text(LIB.json_object_get_string(obj))
    if kind == _ARRAY:
        return [_convert(LIB.json_object_array_get_idx(obj, i))
                for i in range(LIB.json_object_array_length(obj))]
    if kind == _OBJECT:
        result = {}
        it, end = LIB.json_object_iter_begin(obj), LIB.json_object_iter_end(obj)
        while not LIB.json_object_iter_equal(ctypes.byref(it), ctypes.byref(end)):
            key = _text(LIB.json_object_iter_peek_name(ctypes.byref(it)))
            value = _convert(LIB.json_object_iter_peek_value(ctypes.byref(it)))
            # blobmsg_add_json_element adds every member; a key json-c stored
            # twice (it cannot) would show up as a duplicate here
            assert key not in result
            result[key] = value
            LIB.json_object_iter_next(ctypes.byref(it))
        return result
    return None


def reference_parse(text):
    """encode_table bytes of what the ubus CLI would send for `text`, or None on failure."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raw = raw[:raw.index(b"\0")]
    obj = LIB.json_tokener_parse(raw)
    if not obj:
        return None
    try:
        if LIB.json_object_get_type(obj) != _OBJECT:
            return None
        return blobmsg.encode_table(_convert(obj))
    finally:
        LIB.json_object_put(obj)
