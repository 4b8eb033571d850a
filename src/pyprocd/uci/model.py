"""UCI data model: packages, sections, options, and the renderings of them.

Strings are Python str; files are decoded as UTF-8 with `surrogateescape` so
any byte sequence survives a load/commit round trip unchanged.
"""


# libuci error codes (uci.h) and their texts, used verbatim in CLI messages.
OK, ERR_MEM, ERR_INVAL, ERR_NOTFOUND, ERR_IO, ERR_PARSE, ERR_DUPLICATE, ERR_UNKNOWN = range(8)
ERROR_TEXTS = [
    "Success",
    "Out of memory",
    "Invalid argument",
    "Entry not found",
    "I/O error",
    "Parse error",
    "Duplicate entry",
    "Unknown error",
]


class UciError(Exception):
    """A libuci-style failure: `code` is one of the ERR_* numbers.

    Parse errors carry the reason and position so the message reads exactly
    like libuci's: "Parse error (<reason>) at line L, byte B".
    """

    def __init__(self, code, reason=None, line=None, byte=None):
        super().__init__(code, reason, line, byte)
        self.code = code
        self.reason = reason
        self.line = line
        self.byte = byte

    def message(self):
        text = ERROR_TEXTS[self.code] if 0 <= self.code < len(ERROR_TEXTS) else "Unknown error"
        if self.reason is not None:
            text += f" ({self.reason}) at line {self.line}, byte {self.byte}"
        return text

    def __str__(self):
        return self.message()


# string.ascii_letters would import `string`, and with it `re` (~0.8 MB in the daemon)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_PKG_LINE_CHARS = _NAME_CHARS + "-"

# str.strip(chars) leaves nothing exactly when every character is one of chars:
# one C call per name instead of a Python loop (a config has many names).


def valid_name(s):
    """Section and option names: non-empty [A-Za-z0-9_]+."""
    return bool(s) and not s.strip(_NAME_CHARS)


def valid_package_line_name(s):
    """Package name in a `package` statement: [A-Za-z0-9_-]+."""
    return bool(s) and not s.strip(_PKG_LINE_CHARS)


def valid_type(s):
    """Section types: non-empty printable ASCII without space (33..126)."""
    return bool(s) and s.isascii() and s.isprintable() and " " not in s


# Package lookup names are checked the same way as types (alnum, _, - or printable).
valid_package = valid_type


def valid_value(s):
    """CLI/delta values: no control characters other than TAB, LF, CR."""
    return all(ord(c) >= 32 or c in "\t\n\r" for c in s)


def djb2(text):
    h = 5381
    for b in text.encode("utf-8", "surrogateescape"):
        h = (h * 33 + b) & 0xFFFFFFFF
    return h & 0x7FFFFFFF


def quote(value):
    """Single-quote like libuci's output: ' becomes '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


class Option:
    __slots__ = ("name", "value")

    def __init__(self, name, value):
        self.name = name
        self.value = value  # str, or list of str

    @property
    def is_list(self):
        return isinstance(self.value, list)


# A section indexes its options by name once it has more than this many;
# most sections have a handful, and a dict each would cost more than scanning.
_OPTION_INDEX_FROM = 8


class Section:
    __slots__ = ("_by_name", "anonymous", "name", "options", "type")

    def __init__(self, type_, name, anonymous=False):
        self.type = type_
        self.name = name
        self.anonymous = anonymous
        self.options = []
        # name -> option once indexed; None: not (yet) indexed; False: never
        # (a rename made two options share a name: the first one wins, by scan)
        self._by_name = None

    def option(self, name):
        index = self._by_name
        if index is None and len(self.options) > _OPTION_INDEX_FROM:
            index = self._index_options()
        if index:
            return index.get(name)
        for opt in self.options:
            if opt.name == name:
                return opt
        return None

    def _index_options(self):
        index = {}
        for opt in self.options:
            index.setdefault(opt.name, opt)
        self._by_name = index if len(index) == len(self.options) else False
        return self._by_name

    def _append(self, opt):
        self.options.append(opt)
        if self._by_name:
            self._by_name[opt.name] = opt  # callers append only names not present

    def set_option(self, name, value):
        """Replace in place (keeping position) or append."""
        opt = self.option(name)
        if opt is None:
            self._append(Option(name, value))
        else:
            opt.value = value

    def add_list_item(self, name, item):
        opt = self.option(name)
        if opt is None:
            self._append(Option(name, [item]))
        elif opt.is_list:
            opt.value.append(item)
        else:
            opt.value = [opt.value, item]

    def delete_option(self, name):
        opt = self.option(name)
        if opt is not None:
            self.options.remove(opt)
            if self._by_name:
                del self._by_name[name]
                if not self._by_name:
                    self._by_name = None  # empty: rebuilt when it grows again
        return opt is not None

    def rename_option(self, opt, new_name):
        index = self._by_name
        if index:
            if index.get(new_name, opt) is not opt:
                self._by_name = False  # two options share a name from now on
            else:
                del index[opt.name]
                index[new_name] = opt
        opt.name = new_name


class Package:
    def __init__(self, name):
        self.name = name
        self.sections = []
        # name -> section while names are unique (lookups are then O(1): a
        # config can have tens of thousands of named sections); None once two
        # sections share a name (rename, a generated name taken), when the
        # first one in order wins and lookups scan as libuci does.
        self._by_name = {}
        self.counter = 0  # sections created in this load (for cfgXXXXXX names)
        # Set by the store:
        self.path = None
        self.has_delta = True
        self.from_conf2 = False

    def section(self, name):
        if self._by_name is not None:
            return self._by_name.get(name)
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def new_section(self, type_, name=None):
        """Append a section; name None means anonymous (a cfgXXXXXX name is made)."""
        self.counter += 1
        if name is None:
            name = f"cfg{self.counter:02x}{djb2(type_) & 0xFFFF:04x}"
            sec = Section(type_, name, anonymous=True)
        else:
            sec = Section(type_, name)
        self.sections.append(sec)
        if self._by_name is not None:
            if name in self._by_name:
                self._by_name = None
            else:
                self._by_name[name] = sec
        return sec

    def remove_section(self, sec):
        self.sections.remove(sec)
        if self._by_name is not None:
            del self._by_name[sec.name]

    def rename_section(self, sec, new_name):
        """Rename; the section is no longer anonymous (it is written with its name)."""
        if self._by_name is not None:
            if self._by_name.get(new_name, sec) is not sec:
                self._by_name = None
            else:
                del self._by_name[sec.name]
                self._by_name[new_name] = sec
        sec.name = new_name
        sec.anonymous = False

    def set_section_type(self, sec, type_):
        """Change the type in place; libuci re-creates the section when the
        type length differs, which makes an anonymous section named."""
        if len(type_) != len(sec.type):
            sec.anonymous = False
        sec.type = type_

    def move_section(self, sec, pos):
        self.sections.remove(sec)
        pos = max(pos, 0)
        self.sections.insert(min(pos, len(self.sections)), sec)

    def lookup_extended(self, type_, index):
        """`@type[index]` (type None = any type); negative counts from the end."""
        matches = [s for s in self.sections if type_ is None or s.type == type_]
        if index < 0:
            index += len(matches)
        if 0 <= index < len(matches):
            return matches[index]
        return None

    # -- renderings ----------------------------------------------------------

    def export(self, header=True, name_anonymous=False):
        """`uci export` text; header=False gives the committed file content."""
        out = []
        if header:
            out.append("package {}\n".format(self.name.replace("'", "'\\''")))
        for sec in self.sections:
            out.append("\nconfig {}".format(sec.type.replace("'", "'\\''")))
            if not sec.anonymous or name_anonymous:
                out.append(" " + quote(sec.name))
            out.append("\n")
            for opt in sec.options:
                name = opt.name.replace("'", "'\\''")
                if opt.is_list:
                    for item in opt.value:
                        out.append(f"\tlist {name} {quote(item)}\n")
                else:
                    out.append(f"\toption {name} {quote(opt.value)}\n")
        out.append("\n")
        return "".join(out)

    def show_names(self, extended=True):
        """Section -> display name for `uci show` (@type[i] for anonymous ones)."""
        seen = {}
        names = {}
        for sec in self.sections:
            index = seen.get(sec.type, 0)
            seen[sec.type] = index + 1
            if extended and sec.anonymous:
                names[id(sec)] = f"@{sec.type}[{index}]"
            else:
                names[id(sec)] = sec.name
        return names

    def show(self, extended=True, delimiter=" "):
        names = self.show_names(extended)
        return "".join(show_section(self.name, names[id(s)], s, delimiter) for s in self.sections)


def show_value(value, delimiter=" "):
    if isinstance(value, list):
        return delimiter.join(quote(v) for v in value)
    return quote(value)


def show_option(pkg_name, sec_name, opt, delimiter=" "):
    return f"{pkg_name}.{sec_name}.{opt.name}={show_value(opt.value, delimiter)}\n"


def show_section(pkg_name, sec_name, sec, delimiter=" "):
    lines = [f"{pkg_name}.{sec_name}={sec.type}\n"]
    lines.extend(show_option(pkg_name, sec_name, opt, delimiter) for opt in sec.options)
    return "".join(lines)


def get_value(value, delimiter=" "):
    """`uci get` rendering: raw, list items quoted only when they contain blanks."""
    if not isinstance(value, list):
        return value
    items = []
    for item in value:
        if any(c in item for c in " \t\r\n"):
            items.append(quote(item))
        else:
            items.append(item)
    return delimiter.join(items)
