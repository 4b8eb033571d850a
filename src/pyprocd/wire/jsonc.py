"""JSON text -> typed Python values, exactly as the `ubus` CLI reads a message.

    >>> from pyprocd.wire.jsonc import parse_object
    >>> parse_object("{'a': 01, /* note */ \\"b\\": [1.,], c: 1}")
    Traceback (most recent call last):
    ...
    pyprocd.wire.blob.BlobError: invalid JSON at offset 33: expected a quoted member name
    >>> parse_object("{'a': 01, /* note */ \\"b\\": [1.,]} trailing")
    {'a': 1, 'b': [1.0]}

The CLI hands the text to json-c 0.16 (default, non-strict tokener) and then
to libubox's blobmsg_add_json_from_string. This module reproduces both:

* json-c leniencies: single-quoted strings, /* */ and // comments, trailing
  commas, case-insensitive true/false/null, NaN and Infinity (any case),
  leading zeros, "1.", raw control characters and invalid UTF-8 inside
  strings, lone surrogate escapes (U+FFFD), anything after the top-level
  value; at most 31 nested containers, the top object included; the text
  ends at a NUL character (C string). A quirk kept on purpose: text that
  ends inside a comment right after an inner object's '}' is taken as
  complete, and that inner object becomes the message
  ('{"a":{"b":1}//' sends {"b":1}), exactly as the real CLI does.
* blobmsg typing: integers -> int when they fit INT32, else types.Int64,
  saturated to the int64 range; numbers with '.', 'e' or 'E' -> float;
  true/false -> bool; null -> None; strings and member names cut at an
  embedded NUL; a repeated member keeps the position of its first
  occurrence and the value of its last.
"""

import re

from .blob import BlobError
from .types import Int64

__all__ = ["MAX_NESTING", "parse_object"]

MAX_NESTING = 31  # json-c's default tokener depth 32 leaves room for 31 containers
_WS = " \t\n\r"  # json-c's is_ws_char (not \v or \f)
_HEX = "0123456789abcdefABCDEF"
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "n": "\n", "r": "\r",
                   "t": "\t", "f": "\f"}
_STRTOD_PREFIX = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def parse_object(text):
    """Parse `text` (str, or bytes taken as UTF-8) into a dict; BlobError if the CLI would fail."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    if not isinstance(text, str):
        raise BlobError(f"JSON text must be str, not {type(text).__name__}")
    nul = text.find("\0")
    if nul >= 0:  # json-c gets a C string
        text = text[:nul]
    parser = _Parser(text)
    try:
        value = parser.value(0)
        parser.finish()
    except _EndInComment:
        # json-c quirk: text ending inside a comment right after some inner
        # object's '}' counts as complete, and that inner object is the result
        value = parser.closed_obj
    if type(value) is not dict:
        raise BlobError("JSON message is not an object")
    return value


class _EndInComment(Exception):
    """The text ended inside a comment that follows an object's closing brace."""


class _Parser:
    __slots__ = ("closed_end", "closed_obj", "i", "n", "s")

    def __init__(self, text):
        self.s = text
        self.i = 0
        self.n = len(text)
        self.closed_end = -1  # index just after the last '}' and the object it closed
        self.closed_obj = None

    def fail(self, what):
        if self.i >= self.n:
            raise BlobError(f"invalid JSON: unexpected end of text ({what})")
        raise BlobError(f"invalid JSON at offset {self.i}: {what}")

    def skip_ws(self):
        """Skip white space and comments; the next character must exist."""
        s, n = self.s, self.n
        entry = self.i
        while True:
            i = self.i
            while i < n and s[i] in _WS:
                i += 1
            self.i = i
            if i >= n:
                self.fail("more input expected")
            if s[i] != "/":
                return
            if not self.skip_comment():
                if entry == self.closed_end:
                    raise _EndInComment
                self.fail("unterminated comment")

    def skip_comment(self):
        """At a '/': skip one comment the way json-c's tokener does.

        Returns True, or False when the text ends inside the comment (what
        that means depends on where). A lone '/' is an error.
        """
        s, n = self.s, self.n
        i = self.i + 1
        if i >= n:
            self.i = i
            self.fail("'/' not starting a comment")
        if s[i] == "/":
            end = s.find("\n", i + 1)
            self.i = n if end < 0 else end + 1
            return end >= 0
        if s[i] != "*":
            self.i = i
            self.fail("'/' not starting a comment")
        i += 1
        while True:  # json-c consumes the character after each '*': "**/" does not close
            star = s.find("*", i)
            if star < 0 or star + 1 >= n:
                self.i = n
                return False
            i = star + 2
            if s[star + 1] == "/":
                self.i = i
                return True

    def finish(self):
        """After the top-level value: json-c still eats white space and comments."""
        s, n = self.s, self.n
        while True:
            i = self.i
            while i < n and s[i] in _WS:
                i += 1
            self.i = i
            if i >= n or s[i] != "/":
                return  # anything else is ignored
            if not self.skip_comment():
                return  # the text ended inside a comment: fine at the top level

    def value(self, depth):
        self.skip_ws()
        c = self.s[self.i]
        if c == "{":
            return self.object(depth + 1)
        if c == "[":
            return self.array(depth + 1)
        if c == '"' or c == "'":
            return self.string()
        if c in "tTfF":
            return self.literal(("true", True), ("false", False))
        if c in "nN":
            return self.literal(("null", None), ("nan", float("nan")))
        if c in "iI":
            return self.literal(("infinity", float("inf")))
        if c == "-" or "0" <= c <= "9":
            return self.number()
        self.fail(f"unexpected character {c!r}")

    def literal(self, *choices):
        """json-c compares literals case-insensitively, character by character."""
        s, i = self.s, self.i
        for word, result in choices:
            if s[i:i + len(word)].lower() == word:
                self.i = i + len(word)
                return result
        self.fail("invalid literal")

    def object(self, depth):
        if depth > MAX_NESTING:
            self.fail(f"nesting deeper than {MAX_NESTING} levels")
        self.i += 1  # '{'
        result = {}
        self.skip_ws()
        if self.s[self.i] == "}":
            return self.close_object(result)
        while True:
            c = self.s[self.i]
            if c != '"' and c != "'":
                self.fail("expected a quoted member name")
            key = self.string()
            self.skip_ws()
            if self.s[self.i] != ":":
                self.fail("expected ':'")
            self.i += 1
            # assigning to an existing key keeps its position, like json-c's object add
            result[key] = self.value(depth)
            self.skip_ws()
            c = self.s[self.i]
            if c == "}":
                return self.close_object(result)
            if c != ",":
                self.fail("expected ',' or '}'")
            self.i += 1
            self.skip_ws()
            if self.s[self.i] == "}":  # trailing comma
                return self.close_object(result)

    def close_object(self, result):
        self.i += 1  # '}'
        self.closed_end = self.i
        self.closed_obj = result
        return result

    def array(self, depth):
        if depth > MAX_NESTING:
            self.fail(f"nesting deeper than {MAX_NESTING} levels")
        self.i += 1  # '['
        result = []
        self.skip_ws()
        if self.s[self.i] == "]":
            self.i += 1
            return result
        while True:
            result.append(self.value(depth))
            self.skip_ws()
            c = self.s[self.i]
            self.i += 1
            if c == "]":
                return result
            if c != ",":
                self.i -= 1
                self.fail("expected ',' or ']'")
            self.skip_ws()
            if self.s[self.i] == "]":  # trailing comma
                self.i += 1
                return result

    def string(self):
        """A string opened by ' or " (at self.i); cut at an embedded NUL like strlen()."""
        s, n = self.s, self.n
        quote = s[self.i]
        i = self.i + 1
        parts = []
        while True:
            j = s.find(quote, i)
            backslash = s.find("\\", i, j if j >= 0 else n)
            if backslash >= 0:
                j = backslash
            if j < 0:
                self.i = n
                self.fail("unterminated string")
            parts.append(s[i:j])
            if s[j] == quote:
                self.i = j + 1
                break
            i = self.escape(j + 1, parts)
        text = "".join(parts)
        nul = text.find("\0")
        return text if nul < 0 else text[:nul]

    def escape(self, i, parts):
        """Decode the escape after a backslash at i-1; return the index after it."""
        s, n = self.s, self.n
        if i >= n:
            self.i = n
            self.fail("unterminated string")
        c = s[i]
        simple = _SIMPLE_ESCAPES.get(c)
        if simple is not None:
            parts.append(simple)
            return i + 1
        if c != "u":
            self.i = i
            self.fail(f"invalid escape '\\{c}'")
        code, i = self.hex4(i + 1)
        if 0xD800 <= code <= 0xDBFF:
            if s.startswith("\\u", i):
                low, after = self.hex4(i + 2)
                if 0xDC00 <= low <= 0xDFFF:
                    parts.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    return after
            parts.append("\ufffd")  # lone high surrogate; what follows is read on its own
            return i
        if 0xDC00 <= code <= 0xDFFF:
            parts.append("\ufffd")
            return i
        parts.append(chr(code))
        return i

    def hex4(self, i):
        digits = self.s[i:i + 4]
        if len(digits) < 4 or any(d not in _HEX for d in digits):
            self.i = i
            self.fail("invalid \\u escape")
        return int(digits, 16), i + 4

    def number(self):
        """json-c's number scan: digits, one '.', one exponent, signs where allowed."""
        s, n = self.s, self.n
        start = i = self.i
        is_double = is_exponent = False
        neg_ok, pos_ok = True, False
        while i < n:
            c = s[i]
            if "0" <= c <= "9" or c == "-" and neg_ok or c == "+" and pos_ok:
                neg_ok = pos_ok = False
            elif c == "." and not is_double:
                is_double = True
                neg_ok = pos_ok = False
            elif c in "eE" and not is_exponent:
                is_double = is_exponent = True
                neg_ok = pos_ok = True
            else:
                break
            i += 1
        token = s[start:i]
        if token == "-" and s[i:i + 8].lower() == "infinity":
            self.i = i + 8
            return float("-inf")
        self.i = i
        if not is_double:
            digits = token.lstrip("-").lstrip("0")
            if not token.lstrip("-"):
                self.i = start
                self.fail(f"invalid number {token!r}")
            if len(digits) > 19:  # strtoll/strtoull saturate; skip int()'s digit limit
                return Int64(_INT64_MIN if token[0] == "-" else _INT64_MAX)
            value = int(token)
            if _INT32_MIN <= value <= _INT32_MAX:
                return value
            return Int64(min(max(value, _INT64_MIN), _INT64_MAX))
        # json-c hands the token to strtod and only needs it to read something:
        # "1e", "1.e+" are 1.0, "-." is an error
        number = _STRTOD_PREFIX.match(token)
        if number is None:
            self.i = start
            self.fail(f"invalid number {token!r}")
        return float(number.group())
