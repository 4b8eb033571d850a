"""The ubus CLI's JSON reading: spec §2.5/§2.6 cases, and differential runs against json-c."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyprocd.wire import blobmsg
from pyprocd.wire.blob import BlobError
from pyprocd.wire.types import Int64

from . import jsonc_ref

needs_jsonc = pytest.mark.skipif(jsonc_ref.LIB is None, reason="libjson-c.so.5 not installed")

# (text, expected value) for texts json-c 0.16 accepts, per spec §2.6
ACCEPTED = [
    ('{"a":1} trailing', {"a": 1}),
    ("{'a':'b'}", {"a": "b"}),
    ('{/* c */"a"/**/:// line\n1}', {"a": 1}),
    ('{"a":[1,2,],}', {"a": [1, 2]}),
    ('{"a":TRUE,"b":False,"c":nULL}', {"a": True, "b": False, "c": None}),
    ('{"a":01,"b":-0,"c":-0.0,"d":1.,"e":1e2,"f":2147483648.0}',
     {"a": 1, "b": 0, "c": -0.0, "d": 1.0, "e": 100.0, "f": 2147483648.0}),
    ('{"a":"tab\there"}', {"a": "tab\there"}),
    ('{"a":"\\ud800x","b":"\\udc00"}', {"a": "\ufffdx", "b": "\ufffd"}),
    ('{"a":"\\ud83d\\ude00"}', {"a": "\U0001F600"}),
    ('{"a":1e400,"b":-1e400}', {"a": math.inf, "b": -math.inf}),
    ('{"a":-9223372036854775809}', {"a": Int64(-(1 << 63))}),
    ('{"a":1}\0{"b":2}', {"a": 1}),
    ('  \n{"a":{}}', {"a": {}}),
    ('{"a":-.5}', {"a": -0.5}),
    ('{"a":{"b":1}//', {"b": 1}),  # json-c: EOF in a comment after an inner '}' ends the parse
    ('[{"z":1}, {"y":2} /* x', {"y": 2}),
    ('{"a":1e,"b":1.e+,"c":1E-}', {"a": 1.0, "b": 1.0, "c": 1.0}),  # strtod reads "1"/"1." 
]

REJECTED = ["", "   ", "+1", '{"a":+1}', '{"a":.5}', '{"a":0x10}', '{"a":-}', "{a:1}",
            '{"a":[1,,2]}', '{"a" 1}', '{"a":1 "b":2}', "[1]", '"s"', "1", "null",
'{"a":"\\x"}', '{"a":"\\u12"}', '{"a":inf}', '{"a":"open',
            '{"a":1', "{,}", '{"a":tru}', '{"a":[1}', '{"a":/x 1}', '{"a":[1]//', "{}/",
            '{"a":{}/', '{"a":{},//', '[{}/* x */']


@pytest.mark.parametrize("text,expected", ACCEPTED)
def test_json_c_leniencies(text, expected):
    value = blobmsg.from_json(text)
    assert blobmsg.encode_table(value) == blobmsg.encode_table(expected)


@pytest.mark.parametrize("text", REJECTED)
def test_json_c_rejections(text):
    with pytest.raises(BlobError):
        blobmsg.from_json(text)


def test_int_typing_and_types():
    value = blobmsg.from_json('{"i":2147483647,"j":2147483648,"k":-2147483649,"d":3.0}')
    assert type(value["i"]) is int
    assert type(value["j"]) is Int64 and type(value["k"]) is Int64
    assert type(value["d"]) is float


def test_huge_integer_literal_saturates_without_python_digit_limit():
    value = blobmsg.from_json('{"a":' + "9" * 5000 + ',"b":-' + "9" * 5000 + "}")
    assert value == {"a": (1 << 63) - 1, "b": -(1 << 63)}


def test_nesting_limit():
    ok = "{" + '"a":{' * 30 + "}" * 30 + "}"
    assert blobmsg.from_json(ok)
    with pytest.raises(BlobError):
        blobmsg.from_json("{" + '"a":[' * 31 + "]" * 31 + "}")


@needs_jsonc
@pytest.mark.parametrize("text", [t for t, _ in ACCEPTED] + REJECTED)
def test_cases_agree_with_real_json_c(text):
    _assert_same_as_json_c(text)


def _assert_same_as_json_c(text):
    expected = jsonc_ref.reference_parse(text)
    try:
        got = blobmsg.encode_table(blobmsg.from_json(text))
    except BlobError:
        got = None
    assert got == expected, (text, jsonc_ref.VERSION)


# Texts built from JSON-ish fragments, including the lenient and broken ones,
# so that most are near the accept/reject boundary.
_atoms = st.sampled_from([
    "0", "1", "-1", "01", "-0", "1.", "1.5", "-.5", ".5", "+1", "1e5", "1E+2", "1e", "1e-400",
    "2147483647", "2147483648", "-2147483649", "18446744073709551616", "0x1", "--1", "1.2.3",
    "true", "TRUE", "tRuE", "false", "null", "NULL", "nan", "NaN", "Infinity", "-infinity",
    "inf", "nul", '""', '"a"', "'a'", '"\\u0000x"', '"\\ud800"', '"\\ud800\\udc00"', '"\\t"',
    '"\\/"', '"\\\'"', '"\\q"', '"a\tb"', '"\\u00e9"', '"é"', "'it''s'",
])
_noise = st.sampled_from(["", " ", "\n", "/**/", "/* x */", "// c\n", ",", ":", "/", "*/",
                          "\t", "\v", "}", "]"])


def _documents(depth=3):
    def extend(children):
        member = st.tuples(st.sampled_from(['"k"', "'k'", '"a"', '""', "k", '"k\\u0000z"', "1"]),
                           _noise, children, _noise)
        obj = st.lists(member, max_size=4).map(
            lambda ms: "{" + ",".join(f"{k}{n1}:{v}{n2}" for k, n1, v, n2 in ms) + "}")
        arr = st.lists(st.tuples(children, _noise), max_size=4).map(
            lambda es: "[" + ",".join(v + n for v, n in es) + "]")
        return st.one_of(obj, arr, st.tuples(obj, _noise).map("".join))

    return st.recursive(_atoms, extend, max_leaves=12)


_top = st.tuples(_noise, _documents(), _noise, st.sampled_from(["", " x", "}", "/", "/*", " //"]))


@needs_jsonc
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_top.map("".join))
def test_differential_against_json_c(text):
    _assert_same_as_json_c(text)


@needs_jsonc
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('{}[]:,"\'\\/*-+.0123456789eEtrufalsnNIi \n\t\x01'),
               max_size=40).map(lambda s: "{" + s))
def test_differential_random_text_against_json_c(text):
    _assert_same_as_json_c(text)


_string_pieces = st.one_of(
    st.text(max_size=3),
    st.integers(0, 0xFFFF).map(lambda c: f"\\u{c:04x}"),
    st.sampled_from(["\\ud800", "\\udbff\\udfff", "\\udc00", "\\ud800\\u0041", "\\\\", '\\"',
                     "'", "\\u00", "\x00", "\udcff", "\\ud800\\ud800\\udc00"]))


@needs_jsonc
@settings(max_examples=200, deadline=None)
@given(st.lists(_string_pieces, max_size=6).map("".join), st.sampled_from(['"', "'"]))
def test_differential_strings_against_json_c(body, quote):
    """Escapes, surrogates, NULs and raw bytes in member names and string values."""
    _assert_same_as_json_c("{" + quote + body + quote + ":1}")
    _assert_same_as_json_c('{"k":' + quote + body + quote + "}")
