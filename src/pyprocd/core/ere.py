"""POSIX extended regular expressions as procd's triggers evaluate them.

procd's json_script tests a `regex` condition with regcomp(REG_EXTENDED |
REG_NOSUB) and regexec() == 0. On OpenWrt that is musl in the C locale, so
this module follows musl's grammar (including what it refuses: `{,n}`, `a{`,
a leading `*`, collating elements) and matches bytes: a UTF-8 character is
several characters, as it is there. A pattern that does not compile never
matches.

Python's `re` is neither POSIX nor safe here: it backtracks, so one trigger
pattern such as `^(a+)+$` could stall the daemon for minutes, and it would
cost the daemon ~0.8 MB of imports. This matcher compiles the pattern to a
Thompson NFA and simulates it over the text one byte at a time, so the work
is at most (states) x (len(text) + 1) steps. Two budgets bound it further: a
pattern compiling to more than MAX_STATES states, or a search needing more
than MAX_STEPS steps, raises TooCostly (the caller logs a refusal).
"""

MAX_STATES = 4096
MAX_STEPS = 250_000
MAX_NESTING = 64  # parentheses and repetitions inside each other
RE_DUP_MAX = 255

# assertion kinds
_BOL, _EOL, _BOW, _EOW, _WORD_BOUNDARY, _NOT_WORD_BOUNDARY = range(6)
# state kinds
_BYTE, _SPLIT, _ASSERT, _MATCH = range(4)


class EreError(ValueError):
    """The pattern does not compile (regcomp would fail)."""


class TooCostly(Exception):
    """The pattern or the search is over this matcher's budget."""


# -- character classes (C locale, bytes) --------------------------------------------


def _set(predicate):
    return frozenset(b for b in range(256) if predicate(b))


def _ascii(b, chars):
    return b < 128 and chr(b) in chars


_DIGITS = "0123456789"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_ALPHA = _LOWER + _UPPER
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
CLASSES = {
    "alnum": _set(lambda b: _ascii(b, _ALPHA + _DIGITS)),
    "alpha": _set(lambda b: _ascii(b, _ALPHA)),
    "blank": _set(lambda b: _ascii(b, " \t")),
    "cntrl": _set(lambda b: b < 32 or b == 127),
    "digit": _set(lambda b: _ascii(b, _DIGITS)),
    "graph": _set(lambda b: 33 <= b <= 126),
    "lower": _set(lambda b: _ascii(b, _LOWER)),
    "print": _set(lambda b: 32 <= b <= 126),
    "punct": _set(lambda b: _ascii(b, _PUNCT)),
    "space": _set(lambda b: _ascii(b, " \t\n\v\f\r")),
    "upper": _set(lambda b: _ascii(b, _UPPER)),
    "xdigit": _set(lambda b: _ascii(b, _DIGITS + "abcdefABCDEF")),
}
_CLASS_NAME_MAX = 14
_ALL = frozenset(range(256))
_WORD = CLASSES["alnum"] | {ord("_")}

# musl's backslash macros: \t etc. are characters, \w etc. bracket expressions
_MACROS = {
    ord("t"): frozenset(b"\t"), ord("n"): frozenset(b"\n"), ord("r"): frozenset(b"\r"),
    ord("f"): frozenset(b"\f"), ord("a"): frozenset(b"\a"), ord("e"): frozenset(b"\x1b"),
    ord("w"): _WORD, ord("W"): _ALL - _WORD,
    ord("s"): CLASSES["space"], ord("S"): _ALL - CLASSES["space"],
    ord("d"): CLASSES["digit"], ord("D"): _ALL - CLASSES["digit"],
}
_ASSERTION_ESCAPES = {ord("b"): _WORD_BOUNDARY, ord("B"): _NOT_WORD_BOUNDARY,
                      ord("<"): _BOW, ord(">"): _EOW}


def _code_point_bytes(value):
    """The text bytes a wide character literal (\\xHH, \\x{H...}) can match.

    In musl's byte-based C locale a byte >= 0x80 reads as 0xDF80 + byte, so
    \\x{dfe9} matches the byte 0xe9 and \\xe9 matches nothing.
    """
    if 0 < value < 0x80:
        return frozenset((value,))
    if 0xDF80 <= value <= 0xDFFF:
        return frozenset((value - 0xDF00,))
    return frozenset()


# -- parsing: pattern bytes -> tree ------------------------------------------------------
#
# Nodes are tuples: ("set", frozenset), ("assert", kind), ("empty",),
# ("cat", [nodes]), ("alt", [nodes]), ("repeat", node, min, max or None).


class _Parser:
    def __init__(self, pattern):
        self.p = pattern
        self.i = 0

    def peek(self, offset=0):
        j = self.i + offset
        return self.p[j] if j < len(self.p) else 0

    def fail(self, why):
        raise EreError(why)

    def regex(self, depth):
        if depth > MAX_NESTING:
            raise TooCostly("pattern nested too deeply")
        branches = [self.branch(depth)]
        while self.peek() == ord("|"):
            self.i += 1
            branches.append(self.branch(depth))
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def branch(self, depth):
        items = []
        while True:
            c = self.peek()
            if c == 0 or c == ord("|") or (c == ord(")") and depth > 0):
                break
            if c == ord("("):
                self.i += 1
                atom = self.regex(depth + 1)
                if self.peek() != ord(")"):
                    self.fail("unmatched (")
                self.i += 1
            else:
                atom = self.atom()
            items.append(self.repetitions(atom, depth))
        if not items:
            return ("empty",)
        return items[0] if len(items) == 1 else ("cat", items)

    def atom(self):
        c = self.peek()
        self.i += 1
        if c == ord("["):
            return ("set", self.bracket())
        if c == ord("\\"):
            return self.escape()
        if c == ord("."):
            return ("set", _ALL)
        if c == ord("^"):
            return ("assert", _BOL)
        if c == ord("$"):
            return ("assert", _EOL)
        if c == ord("*"):
            self.fail("* with nothing to repeat")
        if c in b"{+?":
            self.fail("repetition with nothing to repeat")
        return ("set", frozenset((c,)))

    def escape(self):
        c = self.peek()
        self.i += 1
        if c == 0:
            self.fail("trailing backslash")
        if c in _MACROS:
            return ("set", _MACROS[c])
        if c in _ASSERTION_ESCAPES:
            return ("assert", _ASSERTION_ESCAPES[c])
        if c == ord("x"):
            return ("set", _code_point_bytes(self.hex_escape()))
        return ("set", frozenset((c,)))  # any other escaped byte is itself

    def hex_escape(self):
        digits = 2
        if self.peek() == ord("{"):
            digits = 8
            self.i += 1
        value = count = 0
        while count < digits and value < 0x110000:
            c = self.peek()
            if not (_ascii(c, _DIGITS) or _ascii(c, "abcdefABCDEF")):
                break
            value = value * 16 + int(chr(c), 16)
            count += 1
            self.i += 1
        if digits == 8:
            if self.peek() != ord("}"):
                self.fail("\\x{ without }")
            self.i += 1
        return value

    def repetitions(self, atom, depth):
        while True:
            c = self.peek()
            if c == ord("*"):
                bounds = (0, None)
            elif c == ord("+"):
                bounds = (1, None)
            elif c == ord("?"):
                bounds = (0, 1)
            elif c == ord("{"):
                self.i += 1
                bounds = self.interval()  # leaves i at the closing brace
            else:
                return atom
            self.i += 1
            depth += 1
            if depth > MAX_NESTING:
                raise TooCostly("repetitions nested too deeply")
            low, high = bounds
            atom = ("empty",) if low == 0 and high == 0 else ("repeat", atom, low, high)

    def count(self):
        """Decimal digits -> int, None when there are none (musl: -1)."""
        if not _ascii(self.peek(), _DIGITS):
            return None
        n = 0
        while True:
            n = n * 10 + self.peek() - ord("0")
            self.i += 1
            if not _ascii(self.peek(), _DIGITS) or n > RE_DUP_MAX:
                return n

    def interval(self):
        low = self.count()
        high = low
        unbounded = False
        if self.peek() == ord(","):
            self.i += 1
            high = self.count()
            unbounded = high is None
        if (low is None or low > RE_DUP_MAX or (high is not None and high > RE_DUP_MAX)
                or (high is not None and high < low) or self.peek() != ord("}")):
            self.fail("bad interval")
        return low, None if unbounded else high

    def bracket(self):
        negate = self.peek() == ord("^")
        if negate:
            self.i += 1
        start = self.i
        members = set()
        while True:
            c = self.peek()
            if c == 0:
                self.fail("unmatched [")
            if c == ord("]") and self.i != start:
                self.i += 1
                break
            nxt = self.peek(1)
            if (c == ord("-") and self.i != start and nxt != ord("]")
                    and (nxt != ord("-") or self.peek(2) == ord("]"))):
                self.fail("misplaced - in a bracket expression")
            if c == ord("[") and nxt in b".=":
                self.fail("collating elements are not supported")
            if c == ord("[") and nxt == ord(":"):
                members |= self.bracket_class()
                continue
            low = high = c
            self.i += 1
            if self.peek() == ord("-") and self.peek(1) != ord("]"):
                high = self.peek(1)
                if high == 0 or low > high:
                    self.fail("bad range")
                self.i += 2
            members.update(range(low, high + 1))
        return _ALL - members if negate else frozenset(members)

    def bracket_class(self):
        name_start = self.i + 2
        end = self.p.find(b":", name_start, name_start + _CLASS_NAME_MAX)
        if end < 0 or b"\0" in self.p[name_start:end]:
            self.fail("bad character class")
        members = CLASSES.get(self.p[name_start:end].decode("ascii", "replace"))
        if members is None or self.p[end + 1:end + 2] != b"]":
            self.fail("bad character class")
        self.i = end + 2
        return members


# -- compiling: tree -> NFA -----------------------------------------------------------------


class _Builder:
    """States are built back to front: each node is compiled knowing its successor."""

    def __init__(self):
        self.kind, self.arg, self.out = [], [], []
        self.calls = 0  # `(((){255}){255}){255}` makes no state but many calls


    def state(self, kind, arg, out):
        if len(self.kind) >= MAX_STATES:
            raise TooCostly(f"pattern needs more than {MAX_STATES} states")
        self.kind.append(kind)
        self.arg.append(arg)
        self.out.append(out)
        return len(self.kind) - 1

    def node(self, node, nxt):
        self.calls += 1
        if self.calls > 4 * MAX_STATES:
            raise TooCostly("pattern repeats too much")
        tag = node[0]
        if tag == "set":
            return self.state(_BYTE, node[1], [nxt])
        if tag == "assert":
            return self.state(_ASSERT, node[1], [nxt])
        if tag == "empty":
            return nxt
        if tag == "cat":
            for item in reversed(node[1]):
                nxt = self.node(item, nxt)
            return nxt
        if tag == "alt":
            return self.state(_SPLIT, None, [self.node(b, nxt) for b in node[1]])
        _, body, low, high = node
        if high is None:
            loop = self.state(_SPLIT, None, [])
            self.out[loop][:] = [self.node(body, loop), nxt]
            start = loop
        else:
            start = nxt
            for _ in range(high - low):
                start = self.state(_SPLIT, None, [self.node(body, start), nxt])
        for _ in range(low):
            start = self.node(body, start)
        return start


class Program:
    """A compiled pattern: `search(text)` -> bool, `run(text)` -> (bool, steps)."""

    def __init__(self, tree):
        builder = _Builder()
        final = builder.state(_MATCH, None, [])
        self.start = builder.node(tree, final)
        self.kind, self.arg, self.out = builder.kind, builder.arg, builder.out
        self.size = len(self.kind)

    def search(self, text, budget=MAX_STEPS):
        return self.run(text, budget)[0]

    def run(self, text, budget=MAX_STEPS):
        """Is there a match anywhere in text? Also returns the steps taken.

        Raises TooCostly when the steps would exceed `budget`.
        """
        data = _c_string(text)
        kind, arg, out = self.kind, self.arg, self.out
        seen = [-1] * self.size  # position at which a state was last added
        steps = 0
        reached = []  # states entered by consuming the previous byte
        n = len(data)
        for pos in range(n + 1):
            prev = data[pos - 1] if pos else 0
            nxt = data[pos] if pos < n else 0
            stack = reached + [self.start]  # unanchored: a match may start anywhere
            consuming = []
            while stack:
                s = stack.pop()
                if seen[s] == pos:
                    continue
                seen[s] = pos
                steps += 1
                k = kind[s]
                if k == _MATCH:
                    return True, steps
                if k == _BYTE:
                    consuming.append(s)
                elif k == _SPLIT:
                    stack.extend(out[s])
                elif _holds(arg[s], pos, prev, nxt):
                    stack.append(out[s][0])
            if steps > budget:
                raise TooCostly(f"search needs more than {budget} steps")
            if pos == n:
                break
            reached = [out[s][0] for s in consuming if nxt in arg[s]]
        return False, steps


def _is_word(b):
    return b in _WORD


def _holds(assertion, pos, prev, nxt):
    """musl's assertion checks (note: \\b always holds at the very start and end)."""
    if assertion == _BOL:
        return pos == 0
    if assertion == _EOL:
        return nxt == 0
    if assertion == _BOW:
        return not _is_word(prev) and _is_word(nxt)
    if assertion == _EOW:
        return _is_word(prev) and not _is_word(nxt)
    if assertion == _WORD_BOUNDARY:
        return pos == 0 or nxt == 0 or _is_word(prev) != _is_word(nxt)
    return not (pos == 0 or nxt == 0 or _is_word(prev) != _is_word(nxt))


def _c_string(text):
    """The bytes C sees: UTF-8, up to the first NUL."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
    end = data.find(b"\0")
    return data if end < 0 else data[:end]


def compile(pattern):
    """Pattern -> Program; raises EreError (does not compile) or TooCostly."""
    tree = _Parser(_c_string(pattern)).regex(0)
    return Program(tree)


def search(pattern, text):
    """regexec(regcomp(pattern, REG_EXTENDED|REG_NOSUB), text) == 0, in bounded work.

    A pattern that does not compile gives False; TooCostly propagates.
    """
    try:
        prog = compile(pattern)
    except EreError:
        return False
    return prog.search(text)
