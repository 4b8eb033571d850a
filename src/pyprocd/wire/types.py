"""Python values for blobmsg types that plain Python types cannot tell apart.

Decoding maps STRING->str, INT32->int, BOOL/INT8->bool, DOUBLE->float,
TABLE->dict, ARRAY->list, UNSPEC/null->None; INT16 and INT64 become the int
subclasses below so that re-encoding (e.g. instance `data` echoed by `list`)
keeps the original type. Encoding a plain int gives INT32 when it fits, else
INT64 (libubox's rule for JSON numbers).
"""


class Int16(int):
    __slots__ = ()


class Int64(int):
    __slots__ = ()
