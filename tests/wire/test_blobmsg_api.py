"""The blobmsg API the bus/api layers code against: typing, errors, rendering."""

import math

import pytest

from pyprocd.wire import blobmsg
from pyprocd.wire.blob import BlobError
from pyprocd.wire.types import Int16, Int64

# spec §2.2 byte examples
SPEC_EXAMPLES = [
    ("a", "b", "8300000a 00016100 62000000"),
    ("n", 5, "8500000c 00016e00 00000005"),
    ("t", True, "87000009 00017400 01000000"),
    ("big", 4294967296, "84000014 00036269 67000000 00000001 00000000"),
    ("d", 1.5, "88000010 00016400 3ff80000 00000000"),
    ("z", None, "80000008 00017a00"),
    ("l", [1, "x"], "81000020 00016c00 8500000c 00000000 00000001 8300000a 00000000 78000000"),
    ("t", {}, "82000008 00017400"),
]


@pytest.mark.parametrize("name,value,hexdump", SPEC_EXAMPLES)
def test_spec_byte_examples(name, value, hexdump):
    raw = bytes.fromhex(hexdump.replace(" ", ""))
    assert blobmsg.encode_attr(name, value) == raw
    assert blobmsg.decode_table(raw) == {name: value}


def test_python_types_choose_blobmsg_types():
    table = {"i32": -(1 << 31), "i64": 1 << 31, "I64": Int64(1), "i16": Int16(-2),
             "b": False, "f": 2.0, "s": "x", "n": None}
    payload = blobmsg.encode_table(table)
    types = []
    pos = 0
    while pos < len(payload):
        word = int.from_bytes(payload[pos:pos + 4], "big")
        types.append((word >> 24) & 0x7F)
        pos += ((word & 0xFFFFFF) + 3) & ~3
    assert types == [blobmsg.INT32, blobmsg.INT64, blobmsg.INT64, blobmsg.INT16, blobmsg.BOOL,
                     blobmsg.DOUBLE, blobmsg.STRING, blobmsg.UNSPEC]
    back = blobmsg.decode_table(payload)
    assert back == table
    assert [type(v) for v in back.values()] == [int, Int64, Int64, Int16, bool, float, str,
                                                type(None)]


@pytest.mark.parametrize("bad", [
    {"a": 1 << 63}, {"a": -(1 << 63) - 1}, {"a": Int16(1 << 15)}, {"a": object()},
    {"a": {1: 2}}, {"a": b"bytes"}, {"a": {"x" * 70000: 1}},
])
def test_unencodable_values_raise_blob_error(bad):
    with pytest.raises(BlobError):
        blobmsg.encode_table(bad)


def test_encode_table_wants_a_dict():
    with pytest.raises(BlobError):
        blobmsg.encode_table([1, 2])


def test_nul_cuts_strings_and_names_like_libubox():
    assert blobmsg.decode_table(blobmsg.encode_table({"a\0b": "x\0y"})) == {"a": "x"}


def test_non_utf8_bytes_survive_a_round_trip():
    raw = blobmsg.encode_attr("k", "\udcff\udcfe")
    value = blobmsg.decode_table(raw)
    assert value == {"k": "\udcff\udcfe"}
    assert blobmsg.encode_table(value) == raw
    assert blobmsg.to_json(value).encode("utf-8", "surrogateescape") == b'{"k":"\xff\xfe"}'


def test_repeated_table_name_keeps_the_first_value():
    raw = blobmsg.encode_attr("a", 1) + blobmsg.encode_attr("a", 2)
    assert blobmsg.decode_table(raw) == {"a": 1}
    assert blobmsg.format_json(raw) == '{"a":1,"a":2}'  # libubox prints both


def test_rendering_forms():
    value = {"a": 1, "b": {"c": [True, None]}, "e": [], "f": {}}
    assert blobmsg.to_json(value) == '{"a":1,"b":{"c":[true,null]},"e":[],"f":{}}'
    assert blobmsg.to_json(value, indent=True) == (
        '{\n\t"a": 1,\n\t"b": {\n\t\t"c": [\n\t\t\ttrue,\n\t\t\tnull\n\t\t]\n\t},\n'
        '\t"e": [\n\t\t\n\t],\n\t"f": {\n\t\t\n\t}\n}')
    assert blobmsg.to_json({}, indent=True) == "{\n\t\n}"
    assert blobmsg.to_json("a\"\\\x0c\x7f/é") == '"a\\"\\\\\\u000c\x7f/é"'
    assert blobmsg.to_json([math.nan, -math.inf, 1e300]) == (
        "[nan,-inf," + f"{1e300:f}" + "]")
    assert blobmsg.to_json(-1.7976931348623157e308) == f"{-1.7976931348623157e308:f}"[:316]


def test_format_json_of_an_array_payload():
    payload = blobmsg.encode_array([1, "x"])
    assert blobmsg.format_json(payload, array=True) == '[1,"x"]'
    assert blobmsg.decode_array(payload) == [1, "x"]


def test_buffer_helpers():
    buf = blobmsg.encode_buffer({"a": 1})
    assert buf.hex() == "000000108500000c0001610000000001"
    assert blobmsg.decode_buffer(buf) == {"a": 1}
    assert blobmsg.encode_buffer({"a": 1}, head_id=blobmsg.TABLE)[0] == 2
    with pytest.raises(BlobError):
        blobmsg.decode_buffer(buf + b"\0\0\0\0")
    assert blobmsg.decode_buffer(buf + b"\0\0\0\0", strict=False) == {"a": 1}


def test_from_json_rejects_with_value_error():
    for text in ("[1]", "{", "nope"):
        with pytest.raises(ValueError):
            blobmsg.from_json(text)
