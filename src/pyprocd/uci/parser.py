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

NUL = "\0"
_SPACE = " \t\n\v\f\r"
_SPECIAL = frozenset(_SPACE + "'\"#;\\" + NUL)

# parse_backslash results
_ESCAPE, _CONTINUED, _EOF = range(3)


def _split_lines(text):
    """Physical lines including their '\\n' (only '\\n' ends a line)."""
    lines = text.split("\n")
    result = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        result.append(lines[-1])
    return result


class TokenError(Exception):
    def __init__(self, reason, byte):
        super().__init__(reason)
        self.reason = reason
        self.byte = byte


class Tokenizer:
    """Reads logical lines and tokens exactly as libuci's file parser does."""

    def __init__(self, text):
        self._lines = _split_lines(text)
        self._next_line = 0
        self.line = 0  # newline-terminated physical lines read so far
        self.buf = []
        self.pos = 0

    # -- buffer --------------------------------------------------------------

    def _getln(self, at):
        """Replace the buffer from `at` on with the next physical line."""
        del self.buf[at:]
        if self._next_line >= len(self._lines):
            return False
        line = self._lines[self._next_line]
        self._next_line += 1
        if line.endswith("\n"):
            self.line += 1
        self.buf.extend(line)
        return True

    def next_line(self):
        """Start a new logical line; False at end of input."""
        self.pos = 0
        return self._getln(0)

    def cur(self, offset=0):
        i = self.pos + offset
        return self.buf[i] if i < len(self.buf) else NUL

    def error(self, reason, byte=None):
        raise TokenError(reason, self.pos if byte is None else byte)

    def skip_whitespace(self):
        while self.cur() != NUL and self.cur() in _SPACE:
            self.pos += 1

    # -- tokens --------------------------------------------------------------

    def _parse_backslash(self):
        nxt = self.cur(1)
        if nxt == NUL or nxt == "\n" or (nxt == "\r" and self.cur(2) == "\n"):
            # Line continuation: the next physical line replaces "\\\n".
            return _CONTINUED if self._getln(self.pos) else _EOF
        self.pos += 1  # the escaped byte is taken literally
        return _ESCAPE

    def _single_quoted(self, out):
        self.pos += 1
        buf = self.buf
        while True:
            try:
                end = buf.index("'", self.pos)
            except ValueError:
                end = -1
            if end >= 0:
                out.extend(buf[self.pos:end])  # everything is literal up to the quote
                self.pos = end + 1
                return
            out.extend(buf[self.pos:])
            self.pos = len(buf)
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
            if c == '"':
                self.pos += 1
                return
            if c == "\\":
                if self._parse_backslash() != _ESCAPE:
                    continue
                c = self.cur()
            out.append(c)
            self.pos += 1

    def parse_str(self):
        """One shell-like word starting at pos; returns its text."""
        out = []
        start = self.pos
        next_statement_ok = True
        while True:
            c = self.cur()
            if c == "'":
                self._single_quoted(out)
            elif c == '"':
                self._double_quoted(out)
            elif c == "#":
                self.buf[self.pos] = NUL  # comment: the rest of the line is gone
                break
            elif c == NUL:
                break
            elif c == ";":
                next_statement_ok = False
                break
            elif c == "\\":
                result = self._parse_backslash()
                if result == _EOF:
                    break
                if result == _ESCAPE:
                    out.append(self.cur())
                    self.pos += 1
            else:
                # fast path: a run of ordinary bytes
                buf, end = self.buf, self.pos + 1
                while end < len(buf) and buf[end] not in _SPECIAL:
                    end += 1
                out.extend(buf[self.pos:end])
                self.pos = end
            if self.cur() in _SPACE and self.cur() != NUL:
                break
        compacted = len(out) != self.pos - start
        if next_statement_ok:
            if self.cur() != NUL:
                self.pos += 1  # the terminator is consumed
        elif not compacted:
            # libuci writes the terminating NUL over this ';'.
            self.buf[self.pos] = NUL
        return "".join(out)

    def next_arg(self, required=False, name=False, package=False):
        self.skip_whitespace()
        if self.cur() == ";":
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
            start = tok.pos
            end = start
            while tok.buf[end:end + 1] and tok.buf[end] not in " \t" + NUL:
                end += 1
            word = "".join(tok.buf[start:end])
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
            if tok.cur() == NUL:
                continue
            word = tok.next_arg()
            extra = tok.next_arg()
            result.append(None if extra else word)
        except TokenError:
            result.append(None)
    return result
