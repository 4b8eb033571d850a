"""`pyprocd jshn`: libubox's jshn program, the JSON engine behind jshn.sh.

    jshn [-n] [-i] -r <message>|-R <file>|-o <file>|-p <prefix>|-w

Options act the moment getopt reaches them: `-r`/`-R` print the shell
commands that rebuild a JSON object (json_init; json_add_...;), `-w`/`-o`
write the document that jshn.sh keeps in exported variables, `-n` drops the
newline, `-i` indents (through blobmsg, as libubox does), `-p` sets the
variable prefix. Whatever the first acting option returns is the exit code.

Writing follows json-c 0.16's spaced text; reading uses the project's
json-c-exact parser. The variable layout (J_V root table, J_T<n>/J_A<n>
tables, K_ key lists, T_ types, N_ original names) is jshn.sh's.
"""

import math
import os
import sys

USAGE = "Usage: jshn [-n] [-i] -r <message>|-R <file>|-o <file>|-p <prefix>|-w\n"
OPTIONS_WITH_ARGUMENT = "rRop"
FLAGS = "niw"
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def _out(stream, text):
    stream.buffer.write(text.encode("utf-8", "surrogateescape"))
    stream.buffer.flush()


class Jshn:
    def __init__(self):
        self.prefix = ""
        self.no_newline = False
        self.indent = False

    # ------------------------------------------------------------ reading
    def read_text(self, text):
        from pyprocd.wire.blob import BlobError
        from pyprocd.wire.jsonc import parse_object

        try:
            doc = parse_object(text)
        except BlobError:
            _out(sys.stderr, "Failed to parse message data\n")
            return 1
        lines = ["json_init;\n"]
        _shell_table(lines, doc)
        _out(sys.stdout, "".join(lines))
        return 0

    def read_file(self, path):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            _out(sys.stderr, f"Error opening {path}\n")
            return 3
        return self.read_text(data)

    # ------------------------------------------------------------ writing
    def document(self):
        return _EnvDocument(self.prefix).table("J_V", False)

    def render(self):
        doc = self.document()
        if self.indent:
            from pyprocd.wire.blobmsg import to_json

            text = to_json(doc, indent=True)
        else:
            text = to_jsonc(doc)
        return text if self.no_newline else text + "\n"

    def write(self):
        _out(sys.stdout, self.render())
        return 0

    def write_file(self, path):
        text = self.render()
        try:
            with open(path, "wb") as f:
                f.write(text.encode("utf-8", "surrogateescape"))
        except OSError:
            _out(sys.stderr, f"Error opening {path}\n")
            return 3
        return 0


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    jshn = Jshn()
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            break
        if not word.startswith("-") or word == "-":
            continue  # getopt permutes operands away; jshn takes none
        j = 1
        while j < len(word):
            letter = word[j]
            j += 1
            if letter in FLAGS:
                if letter == "n":
                    jshn.no_newline = True
                elif letter == "i":
                    jshn.indent = True
                else:
                    return jshn.write()
                continue
            if letter not in OPTIONS_WITH_ARGUMENT:
                _out(sys.stderr, f"jshn: invalid option -- '{letter}'\n" + USAGE)
                return 2
            if j < len(word):
                value, j = word[j:], len(word)
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                _out(sys.stderr, f"jshn: option requires an argument -- '{letter}'\n" + USAGE)
                return 2
            if letter == "p":
                jshn.prefix = value
            elif letter == "r":
                return jshn.read_text(value)
            elif letter == "R":
                return jshn.read_file(value)
            else:
                return jshn.write_file(value)
    _out(sys.stderr, USAGE)
    return 2


# ---------------------------------------------------------------- JSON -> shell

def _shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def _shell_key(name):
    """jshn replaces every byte that is not a letter or digit by '_'."""
    raw = name.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if chr(b).isalnum() and b < 128 else "_" for b in raw)


def _shell_table(lines, items):
    pairs = items.items() if type(items) is dict else ((str(i), v) for i, v in enumerate(items))
    for name, value in pairs:
        key = _shell_quote(_shell_key(name))
        if type(value) is dict:
            lines.append(f"json_add_object {key};\n")
            _shell_table(lines, value)
            lines.append("json_close_object;\n")
        elif type(value) is list:
            lines.append(f"json_add_array {key};\n")
            _shell_table(lines, value)
            lines.append("json_close_array;\n")
        elif value is None:
            lines.append(f"json_add_null {key};\n")
        elif type(value) is bool:
            lines.append(f"json_add_boolean {key} {int(value)};\n")
        elif type(value) is float:
            lines.append(f"json_add_double {key} {_printf_lf(value)};\n")
        elif type(value) is str:
            lines.append(f"json_add_string {key} {_shell_quote(value)};\n")
        else:
            lines.append(f"json_add_int {key} {int(value)};\n")


def _printf_lf(x):
    if math.isnan(x):
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:f}"


# ---------------------------------------------------------------- shell -> JSON

class _EnvDocument:
    """The document held in (prefixed) environment variables, read as jshn -w does.

    jshn splits each K_ key list with strtok, which writes NULs into the
    environment string: a table walked a second time (an object key added
    twice) then shows only its first key. `walked` keeps that effect.
    """

    def __init__(self, prefix):
        self.prefix = prefix
        self.env = os.environb
        self.walked = {}

    def get(self, name):
        value = self.env.get((self.prefix + name).encode("utf-8", "surrogateescape"))
        return None if value is None else value.decode("utf-8", "surrogateescape")

    def keys(self, table):
        name = "K_" + table
        text = self.walked.get(name)
        if text is None:
            text = self.get(name) or ""
        keys = text.split()
        if keys:
            self.walked[name] = keys[0]
        return keys

    def table(self, table, is_array):
        result = [] if is_array else {}
        for key in self.keys(table):
            var = f"{table}_{key}"
            kind = self.get("T_" + var)
            value = self.get(var)
            if kind is None or value is None:
                continue
            item = self.value(kind, value)
            if item is _SKIP:
                continue
            if is_array:
                result.append(item)
            else:
                name = self.get("N_" + var)
                result[key if name is None else name] = item
        return result

    def value(self, kind, text):
        if kind == "string":
            return text
        if kind == "int":
            return _atoll(text)
        if kind == "boolean":
            return _atoll(text, 32) != 0
        if kind == "double":
            return _strtod(text)
        if kind == "null":
            return None
        if kind == "object":
            return self.table(text, False)
        if kind == "array":
            return self.table(text, True)
        return _SKIP


_SKIP = object()


def _number_prefix(text):
    s = text.lstrip(" \t\n\r\f\v")
    i = 1 if s[:1] in ("+", "-") else 0
    while i < len(s) and s[i].isdigit() and s[i] < "\x80":
        i += 1
    return s[:i]


def _atoll(text, bits=64):
    """C atoll (strtoll, saturating) / atoi (its low 32 bits)."""
    digits = _number_prefix(text)
    if digits.lstrip("+-") == "":
        return 0
    value = min(max(int(digits), _INT64_MIN), _INT64_MAX)
    if bits == 32:
        value = (value + (1 << 31)) % (1 << 32) - (1 << 31)
    return value


def _strtod(text):
    import re

    s = text.lstrip(" \t\n\r\f\v")
    m = re.match(r"[-+]?(?:inf(?:inity)?|nan)", s, re.IGNORECASE)
    if m:
        return float(m.group(0))
    m = re.match(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", s)
    return float(m.group(0)) if m else 0.0


# ---------------------------------------------------------------- json-c text

_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r",
                 34: '\\"', 47: "\\/", 92: "\\\\"})


def jsonc_double(x):
    """json-c 0.16's default double text."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "-Infinity" if x < 0 else "Infinity"
    text = f"{x:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def to_jsonc(value):
    """json_object_to_json_string_ext(JSON_C_TO_STRING_SPACED)."""
    t = type(value)
    if t is dict:
        if not value:
            return "{ }"
        return "{ " + ", ".join(f'"{k.translate(_ESCAPES)}": {to_jsonc(v)}'
                                for k, v in value.items()) + " }"
    if t is list:
        if not value:
            return "[ ]"
        return "[ " + ", ".join(to_jsonc(v) for v in value) + " ]"
    if t is str:
        return '"' + value.translate(_ESCAPES) + '"'
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if t is float:
        return jsonc_double(value)
    return str(int(value))
