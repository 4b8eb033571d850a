"""Property tests: hostile bytes only ever raise BlobError; values round-trip.

PYPROCD_FUZZ_EXAMPLES=5000 for a long run (default 100 per property, to keep
`make test` quick).
"""

import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyprocd.wire import blobmsg
from pyprocd.wire import ubusmsg as um
from pyprocd.wire.blob import BlobError
from pyprocd.wire.types import Int16, Int64

FUZZ = settings(max_examples=int(os.environ.get("PYPROCD_FUZZ_EXAMPLES", "100")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ values

_names = st.text(max_size=8).map(lambda s: s.replace("\0", ""))
_strings = st.text(max_size=20).map(lambda s: s.replace("\0", ""))
_scalars = st.one_of(
    st.none(), st.booleans(), _strings,
    st.integers(-(1 << 31), (1 << 31) - 1),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.integers(-(1 << 63), (1 << 63) - 1).map(Int64),
    st.integers(-(1 << 15), (1 << 15) - 1).map(Int16),
    st.floats(allow_nan=False),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(_names, children, max_size=5)),
    max_leaves=25)
_tables = st.dictionaries(_names, _values, max_size=6)


def _same(a, b):
    """Equal including the Python type that carries the blobmsg type."""
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return type(b) is list and len(a) == len(b) and all(map(_same, a, b))
    if type(a) is int and not -(1 << 31) <= a < (1 << 31):
        return type(b) is Int64 and a == b  # a plain int too big for INT32 goes as INT64
    if type(a) is float:
        return type(b) is float and (a == b and math.copysign(1, a) == math.copysign(1, b))
    return type(a) is type(b) and a == b


@FUZZ
@given(_tables)
def test_encode_decode_round_trip(table):
    payload = blobmsg.encode_table(table)
    assert len(payload) % 4 == 0
    back = blobmsg.decode_table(payload)
    assert _same(table, back)
    assert blobmsg.encode_table(back) == payload
    # both renderers agree on everything the codec produces
    assert blobmsg.to_json(back) == blobmsg.format_json(payload)
    assert blobmsg.to_json(back, indent=True) == blobmsg.format_json(payload, indent=True)


@FUZZ
@given(_tables)
def test_json_rendering_reads_back_through_the_cli_parser(table):
    """to_json output that is valid JSON parses back (via from_json) to the same bytes."""
    text = blobmsg.to_json(table)
    if "{:" in text or ",:" in text or "nan" in text or "inf" in text:
        return
    if _has_empty_key(table) or _has_lossy_double(table) or _has_short_int(table):
        return
    assert blobmsg.encode_table(blobmsg.from_json(text)) == blobmsg.encode_table(table)


def _walk(value):
    yield value
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _has_empty_key(table):
    return any(isinstance(v, dict) and "" in v for v in _walk(table))


def _has_lossy_double(table):  # %lf keeps 6 decimals; JSON ints for small INT64/INT16 differ
    return any(type(v) is float for v in _walk(table))


def _has_short_int(table):
    return any(type(v) in (Int16, Int64) for v in _walk(table))


# ------------------------------------------------------------------ hostile bytes

def _mutations():
    """Valid encodings with bytes flipped, cut or spliced: close to the edge of validity."""
    return st.tuples(_tables, st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)),
                                       max_size=4), st.integers(0, 4096)).map(_mutate)


def _mutate(args):
    table, flips, cut = args
    data = bytearray(blobmsg.encode_table(table))
    for pos, byte in flips:
        if data:
            data[pos % len(data)] = byte
    return bytes(data[:cut] if cut < len(data) else data)


_hostile = st.one_of(st.binary(max_size=200), _mutations())


@FUZZ
@given(_hostile)
def test_decoders_raise_only_blob_error(data):
    for strict in (True, False):
        try:
            blobmsg.decode_table(data, strict=strict)
        except BlobError:
            pass
        try:
            blobmsg.decode_array(data, strict=strict)
        except BlobError:
            pass
    try:
        blobmsg.format_json(data)
        blobmsg.format_json(data, indent=True, array=True)
    except BlobError:
        pass
    for name_required in (True, False):
        blobmsg.check_attr_len(data, name_required)
        blobmsg.check_attr(data, name_required)
    blobmsg.check_array_len(data)


@FUZZ
@given(_hostile)
def test_strictly_decoded_bytes_reencode_to_a_valid_table(data):
    """Whatever the strict decoder accepts encodes again and decodes to the same values."""
    try:
        value = blobmsg.decode_table(data)
    except BlobError:
        return
    payload = blobmsg.encode_table(value)
    assert blobmsg.encode_table(blobmsg.decode_table(payload)) == payload


def _frames():
    bodies = st.one_of(
        st.binary(max_size=64),
        st.dictionaries(st.sampled_from(sorted(um.ATTR_NAMES)), st.binary(max_size=12),
                        max_size=5).map(lambda d: um.encode_attrs(d)),
        _tables.map(lambda t: um.encode_attrs({um.ATTR_DATA: t, um.ATTR_OBJID: 7})),
    )
    return st.tuples(st.integers(0, 255), st.integers(0, 15), st.integers(0, 0xFFFF),
                     st.integers(0, 0xFFFFFFFF), bodies).map(
        lambda t: um.encode_frame(t[1], t[2], t[3], t[4], version=t[0]))


@FUZZ
@given(st.lists(st.one_of(_frames(), st.binary(max_size=40)), max_size=6),
       st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_message_reader_raises_only_blob_error_and_terminates(pieces, cuts):
    stream = b"".join(pieces)
    reader = um.MessageReader()
    pos = i = 0
    while pos < len(stream):  # bounded: every round consumes at least one byte
        size = cuts[i % len(cuts)]
        i += 1
        try:
            for msg in reader.feed(stream[pos:pos + size]):
                um.encode(msg)  # whatever was decoded can be sent again
        except BlobError:
            return
        pos += size


@FUZZ
@given(st.lists(_frames(), min_size=1, max_size=5), st.integers(1, 64))
def test_valid_frames_survive_any_chunking(frames, chunk):
    stream = b"".join(frames)
    reader = um.MessageReader()
    got = []
    for i in range(0, len(stream), chunk):
        got.extend(reader.feed(stream[i:i + chunk]))
    assert len(got) == len(frames)
    assert reader.pending() == 0
    for frame, msg in zip(frames, got):
        assert msg.body == frame[12:]
        assert um.encode_frame(msg.type, msg.seq, msg.peer, msg.body, msg.version) == frame


def test_deep_nesting_is_an_error_not_a_crash():
    level = blobmsg.encode_attr("", [])
    for _ in range(2000):  # far beyond Python's recursion limit if unchecked
        inner = level
        level = (0x81000000 | (8 + len(inner))).to_bytes(4, "big") + b"\0\0\0\0" + inner
    for call in (blobmsg.decode_table, blobmsg.format_json):
        try:
            call(level)
        except BlobError:
            pass
        else:
            raise AssertionError(f"{call.__name__} accepted 2000 levels")
    nested = []
    for _ in range(2000):
        nested = [nested]
    for call in (blobmsg.encode_table, blobmsg.to_json):
        try:
            call({"a": nested})
        except BlobError:
            pass
        else:
            raise AssertionError(f"{call.__name__} accepted 2000 levels")
