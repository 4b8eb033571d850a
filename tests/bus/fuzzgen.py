"""Random ubus frames for fuzz tests: valid-looking, truncated, mutated, garbage."""

import struct

from pyprocd.bus import frame as F

NAMES = ("name", "instances", "command", "data", "x", "", "verbose", "signal", "type",
         "a" * 40, "\u00e9", "pattern", "object", "id")


def blobmsg_value(rng, depth=0):
    """(type, payload bytes) of a random blobmsg value, sometimes with a wrong size."""
    kind = rng.randrange(11)
    if kind == F.BM_TABLE and depth < 4:
        return kind, blobmsg_children(rng, depth + 1, named=True)
    if kind == F.BM_ARRAY and depth < 4:
        return kind, blobmsg_children(rng, depth + 1, named=False)
    sizes = {F.BM_INT8: 1, F.BM_INT16: 2, F.BM_INT32: 4, F.BM_INT64: 8, F.BM_DOUBLE: 8}
    if kind == F.BM_STRING:
        text = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(12)))
        return kind, text + (b"\0" if rng.random() < 0.9 else b"")
    size = sizes.get(kind, rng.randrange(6))
    if rng.random() < 0.1:
        size = rng.randrange(10)  # a size the type check must reject
    return kind, bytes(rng.randrange(256) for _ in range(size))


def blobmsg_children(rng, depth=0, named=True):
    out = []
    for _ in range(rng.randrange(5)):
        kind, payload = blobmsg_value(rng, depth)
        name = rng.choice(NAMES) if named else ""
        if rng.random() < 0.05:
            out.append(F.attr(kind & 0x7F, payload))  # no name header
        else:
            out.append(F.bm_attr(kind & 0x7F, name, payload))
    data = b"".join(out)
    if data and rng.random() < 0.05:
        data = data[:rng.randrange(len(data))]  # a child running past its container
    return data


def top_attr(rng):
    attr_id = rng.randrange(16)
    choice = rng.randrange(5)
    if choice == 0:
        payload = struct.pack(">I", rng.choice((0, 1, 2, 3, 1024, rng.getrandbits(32))))
    elif choice == 1:
        payload = rng.choice((b"service\0", b"list\0", b"set\0", b"register\0", b"send\0",
                              b"add\0", b"\0", b"x", b"ubus.object.add\0"))
    elif choice == 2:
        payload = blobmsg_children(rng)
    elif choice == 3:
        payload = bytes([rng.randrange(2)])
    else:
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
    return F.attr(attr_id, payload, extended=rng.random() < 0.05)


def random_message(rng, known_ids=()):
    msg_type = rng.randrange(14)
    peer = rng.choice(list(known_ids) + [0, 1, 2, 3, rng.getrandbits(32)])
    body = b"".join(top_attr(rng) for _ in range(rng.randrange(6)))
    raw = F.message(msg_type, rng.getrandbits(16), peer, body, version=rng.choice((0, 0, 0, 1)))
    roll = rng.random()
    if roll < 0.05:
        raw = raw[:rng.randrange(len(raw))]  # truncated
    elif roll < 0.1:
        raw = bytearray(raw)
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)  # bit flip
        raw = bytes(raw)
    return raw


def garbage(rng):
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))


def oversized(rng):
    """A header announcing more than the 1 MiB limit, or a length below 4."""
    raw_len = rng.choice((0, 1, 3, F.MAX_MSG + 8, 0xFFFFFF))
    return struct.pack(">BBHII", 0, F.INVOKE, 1, 0, raw_len)
