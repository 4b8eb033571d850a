"""The UCI file tokenizer and parser, reproducing libuci's behaviour.

libuci parses each logical line in place: unquoting compacts the buffer, and
the token terminator is written where the output ends. Two visible quirks
come from that and are reproduced here on purpose: a `;` right after an
uncompacted token is overwritten (the rest of the line is lost), and error
byte offsets count positions inside the (possibly multi-line) line buffer.
"""

from .model import (
    ERR_PARSE,
    Package,
    UciError,
    valid_name,
    valid_package_line_name,
    valid_type,
)

NUL = 0
_SPACE = frozenset(b" \t\n\v\f\r")
_SPECIAL = frozenset(b" \t\n\v\f\r'\"#;\\\0")
_DOUBLE_QUOTED_SPECIAL = frozenset(b'"\\\0')
_QUOTE, _DQUOTE, _HASH, _SEMICOLON, _BACKSLASH = (ord(c) for c in "'\"#;\\")
_LF, _CR = ord("\n"), ord("\r")

# parse_backslash results
_ESCAPE, _CONTINUED, _EOF = range(3)


def _text(data):
    return data.decode("utf-8", "surrogateescape")


class TokenError(Exception):
    def __init__(self, reason, byte):
        super().__init__(reason)
        self.reason = reason
        self.byte = byte


class Tokenizer:
    """Reads logical lines and tokens exactly as libuci's file parser does.

    Works on bytes, as libuci does (so error offsets are byte offsets): the
    input stays one bytes object, the current logical line is one bytearray
    and a token's output another, which keeps a load within a few times the
    file's size however long its values are. Tokens are returned as str
    (UTF-8 with surrogateescape, so every byte survives a round trip).
    """

    def __init__(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self._data = data
        self._offset = 0  # where the next physical line starts in _data
        self.line = 0  # newline-terminated physical lines read so far
        self.buf = bytearray()
        self.pos = 0

    # -- buffer --------------------------------------------------------------

    def _getln(self, at):
        """Replace the buffer from `at` on with the next physical line."""
        del self.buf[at:]
        data, start = self._data, self._offset
        if start >= len(data):
            return False
        end = data.find(b"\n", start)
        if end < 0:
            end = len(data)
        else:
            end += 1
            self.line += 1
        with memoryview(data) as view:
            self.buf += view[start:end]
        self._offset = end
        return True

    def next_line(self):
        """Start a new logical line; False at end of input."""
        self.pos = 0
        return self._getln(0)

    def cur(self, offset=0):
        """The byte at pos+offset (0 past the end, like C's terminator)."""
        i = self.pos + offset
        return self.buf[i] if i < len(self.buf) else NUL

    def at_end(self):
        """Nothing left on this logical line (end of buffer or a NUL)."""
        return self.cur() == NUL

    def error(self, reason, byte=None):
        raise TokenError(reason, self.pos if byte is None else byte)

    def skip_whitespace(self):
        buf, pos = self.buf, self.pos
        while pos < len(buf) and buf[pos] in _SPACE:
            pos += 1
        self.pos = pos

    # -- tokens --------------------------------------------------------------

    def _parse_backslash(self):
        nxt = self.cur(1)
        if nxt == NUL or nxt == _LF or (nxt == _CR and self.cur(2) == _LF):
            # Line continuation: the next physical line replaces "\\\n".
            return _CONTINUED if self._getln(self.pos) else _EOF
        self.pos += 1  # the escaped byte is taken literally
        return _ESCAPE

    def _copy(self, out, start, end):
        """out += buf[start:end] without a temporary copy of a long run."""
        with memoryview(self.buf) as view, view[start:end] as run:
            out += run

    def _single_quoted(self, out):
        self.pos += 1
        while True:
            end = self.buf.find(b"'", self.pos)
            if end >= 0:
                self._copy(out, self.pos, end)  # everything is literal up to the quote
                self.pos = end + 1
                return
            self._copy(out, self.pos, len(self.buf))
            self.pos = len(self.buf)
            if not self._getln(self.pos):
                self.error("EOF with unterminated '", len(self.buf))

    def _double_quoted(self, out):
        self.pos += 1
        while True:
            c = self.cur()
            if c == NUL:
                if not self._getln(self.pos):
                    self.error('EOF with unterminated "', len(self.buf))
                continue
            if c == _DQUOTE:
                self.pos += 1
                return
            if c == _BACKSLASH:
                if self._parse_backslash() == _ESCAPE:
                    out.append(self.cur())
                    self.pos += 1
                continue
            self._plain_run(out, _DOUBLE_QUOTED_SPECIAL)

    def _plain_run(self, out, special):
        """Copy a run of ordinary bytes (at least the one at pos) to out."""
        buf, end = self.buf, self.pos + 1
        while end < len(buf) and buf[end] not in special:
            end += 1
        self._copy(out, self.pos, end)
        self.pos = end

    def _simple_word(self):
        """The common words in one step: a bare run or one '...' piece that
        whitespace or the line's end follows. None: take the general path."""
        buf, pos = self.buf, self.pos
        n = len(buf)
        if pos >= n:
            return None
        if buf[pos] == _QUOTE:
            first, end = pos + 1, buf.find(b"'", pos + 1)
            if end < 0:
                return None
        else:
            first = end = pos
            while end < n and buf[end] not in _SPECIAL:
                end += 1
            if end == pos:
                return None
        after = end + 1 if first != pos else end  # past the closing quote
        if after < n and buf[after] != NUL:
            if buf[after] not in _SPACE:
                return None  # concatenation, comment, ';' or a backslash follows
            self.pos = after + 1  # the terminator is consumed
        else:
            self.pos = after
        with memoryview(buf) as view, view[first:end] as word:
            return str(word, "utf-8", "surrogateescape")  # no intermediate copy

    def parse_str(self):
        """One shell-like word starting at pos; returns its text."""
        word = self._simple_word()
        if word is not None:
            return word
        out = bytearray()
        start = self.pos
        next_statement_ok = True
        while True:
            c = self.cur()
            if c == _QUOTE:
                self._single_quoted(out)
            elif c == _DQUOTE:
                self._double_quoted(out)
            elif c == _HASH:
                self.buf[self.pos] = NUL  # comment: the rest of the line is gone
                break
            elif c == NUL:
                break
            elif c == _SEMICOLON:
                next_statement_ok = False
                break
            elif c == _BACKSLASH:
                result = self._parse_backslash()
                if result == _EOF:
                    break
                if result == _ESCAPE:
                    out.append(self.cur())
                    self.pos += 1
            else:
                self._plain_run(out, _SPECIAL)
            c = self.cur()
            if c != NUL and c in _SPACE:
                break
        compacted = len(out) != self.pos - start
        if next_statement_ok:
            if self.cur() != NUL:
                self.pos += 1  # the terminator is consumed
        elif not compacted:
            # libuci writes the terminating NUL over this ';'.
            self.buf[self.pos] = NUL
        return _text(out)

    def next_arg(self, required=False, name=False, package=False):
        self.skip_whitespace()
        if self.cur() == _SEMICOLON:
            self.buf[self.pos] = NUL
            self.pos += 1
            value = ""
        else:
            value = self.parse_str()
        if required and not value:
            self.error("insufficient arguments")
        if name and value:
            ok = valid_package_line_name(value) if package else valid_name(value)
            if not ok:
                self.error("invalid character in name field")
        return value

    def assert_eol(self, strict):
        """Extra text after a statement's arguments."""
        self.skip_whitespace()
        extra = self.next_arg()
        if extra and strict:
            self.error("too many arguments")

    def keyword(self):
        """The first word of a statement (delimited by space or TAB only):
        (text, start, end) with pos left at its start."""
        buf, start = self.buf, self.pos
        end = start
        while end < len(buf) and buf[end] not in _KEYWORD_END:
            end += 1
        return _text(buf[start:end]), start, end


_KEYWORD_END = frozenset(b" \t\0")


_KEYWORDS = {
    "p": "package",
    "package": "package",
    "c": "config",
    "config": "config",
    "o": "option",
    "option": "option",
    "l": "list",
    "list": "list",
}
_WITHOUT_NAME = {"package": "package", "config": "config", "option": "option", "list": "option"}


class Parser:
    """Builds a Package from config text (libuci `uci_import` semantics)."""

    def __init__(self, text, package, strict=True, on_error=None, multi=False):
        self.tok = Tokenizer(text)
        self.pkg = package
        self.strict = strict
        self.on_error = on_error  # non-strict: called with the UciError of each bad line
        self.section = None
        self.multi = multi  # import stream: `package` lines start new packages
        self.packages = [package] if package is not None else []

    def parse(self):
        tok = self.tok
        while tok.next_line():
            try:
                self._parse_line()
            except TokenError as e:
                err = UciError(ERR_PARSE, e.reason, tok.line, e.byte)
                if self.strict or self.on_error is None:
                    if self.strict:
                        raise err from None
                else:
                    self.on_error(err)
        return self.pkg

    def _parse_line(self):
        tok = self.tok
        while True:
            tok.skip_whitespace()
            word, start, end = tok.keyword()
            if not word or word[0] == "#":
                return
            keyword = _KEYWORDS.get(word)
            if keyword is None:
                tok.error("invalid command", start)
            if end >= len(tok.buf) or tok.buf[end] == NUL:
                tok.error(f"{_WITHOUT_NAME[keyword]} without name", end)
            tok.pos = end + 1
            if keyword == "package":
                self._package()
            elif keyword == "config":
                self._config()
            else:
                self._option(keyword == "list", start)

    def _package(self):
        tok = self.tok
        name = tok.next_arg(required=True, name=True, package=True)
        tok.assert_eol(self.strict)
        if not self.multi:
            return  # the file name decides the package name
        for pkg in self.packages:
            if pkg.name == name:
                from .model import ERR_DUPLICATE

                raise UciError(ERR_DUPLICATE)
        self.pkg = Package(name)
        self.packages.append(self.pkg)
        self.section = None

    def _config(self):
        tok = self.tok
        type_ = tok.next_arg(required=True)
        if not valid_type(type_):
            tok.error("invalid character in type field")
        name = tok.next_arg(name=True)
        tok.assert_eol(self.strict)
        if self.pkg is None:
            tok.error("attempting to import a file without a package name")
        existing = self.pkg.section(name) if name else None
        if existing is None:
            self.section = self.pkg.new_section(type_, name or None)
            return
        if existing.type != type_:
            if self.strict:
                tok.error("section of different type overwrites prior section with same name")
            self.pkg.set_section_type(existing, type_)
        self.section = existing

    def _option(self, is_list, keyword_start):
        tok = self.tok
        if self.section is None:
            tok.error("option/list command found before the first section", keyword_start)
        name = tok.next_arg(required=True, name=True)
        value = tok.next_arg()
        tok.assert_eol(self.strict)
        if is_list:
            self.section.add_list_item(name, value)
        elif value:
            self.section.set_option(name, value)


def parse_package(text, name, strict=True, on_error=None):
    """Parse config text as package `name`; raises UciError on (strict) errors."""
    return Parser(text, Package(name), strict, on_error).parse()


def parse_import_stream(text, strict=True, on_error=None):
    """`uci import` without a name: a stream of `package NAME` blocks."""
    parser = Parser(text, None, strict, on_error, multi=True)
    parser.parse()
    return parser.packages


def tokenize_single(text):
    """Delta-file lines: each logical line must be exactly one token.

    Returns a list of tokens, None for lines that are not a single token.
    """
    tok = Tokenizer(text)
    result = []
    while tok.next_line():
        try:
            tok.skip_whitespace()
            if tok.at_end():
                continue
            word = tok.next_arg()
            extra = tok.next_arg()
            result.append(None if extra else word)
        except TokenError:
            result.append(None)
    return result
