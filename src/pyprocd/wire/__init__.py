"""wire: blob/blobmsg codec and ubus message framing (bytes only, no sockets).

    >>> from pyprocd.wire import blobmsg, ubusmsg, BlobError
    >>> blobmsg.decode_table(blobmsg.encode_table({"a": 1}))
    {'a': 1}

Modules: `blob` (plain attributes), `blobmsg` (named typed values, JSON),
`element` (blobmsg type ids, name header and element check: the light part
of blobmsg that the bus uses), `jsonc` (the ubus CLI's JSON reader),
`ubusmsg` (message framing, status codes, the stream framer), `types`
(Int16/Int64). Every rejection of bad bytes is a `BlobError`.
"""

from .blob import BlobError

__all__ = ["BlobError"]
