"""`pyprocd validate_data`: UCI option validation for init scripts (ubox's validate_data).

    validate_data PACKAGE TYPE SECTION 'option:datatype[:default]'...
    validate_data DATATYPE VALUE

With a SECTION it loads PACKAGE from UCI and prints shell assignments, one
per rule (`port=8080; mode='fast'; unset -v bad; `), reports every check on
stderr (`pkg.sec.port=8080 validates as port with true`) and exits 255 if a
value failed. With an empty SECTION it prints the jshn commands that add the
rule set to procd's `validate` array instead. The second form checks one
value (exit 0 or 1).

Datatypes follow OpenWrt's: and/or/not/list combinators, quoted literals in
or(), numbers and ranges, lengths, bool, IP addresses and networks, ports,
host names, MAC addresses, files and directories.
"""

import ipaddress
import os
import sys

FAILED = 255
LIST_JOIN = "\\ "  # list items quoted one by one, joined by an escaped space
# values of these types are printed unquoted
NUMERIC = frozenset(("integer", "uinteger", "port", "bool", "float", "ufloat", "min", "max",
                     "range"))


def _out(stream, text):
    stream.buffer.write(text.encode("utf-8", "surrogateescape"))
    stream.buffer.flush()


# ---------------------------------------------------------------- datatypes

def _split_args(text):
    """'a,b(c,d),"e,f"' -> ['a', 'b(c,d)', '"e,f"'] (commas at depth 0, outside quotes)."""
    args, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    args.append(text[start:].strip())
    return [a for a in args if a != ""]


def parse_type(text):
    """'name(args)' -> (name, [args]); a quoted literal -> ('=', [literal])."""
    text = text.strip()
    if len(text) >= 2 and text[0] in "\"'" and text[-1] == text[0]:
        return "=", [text[1:-1]]
    if text.endswith(")") and "(" in text:
        name, _, rest = text.partition("(")
        return name.strip(), _split_args(rest[:-1])
    return text, []


def _number(text, unsigned=False, integer=True):
    try:
        value = int(text, 10) if integer else float(text)
    except ValueError:
        return None
    if integer and text.strip() != text:
        return None
    return None if unsigned and value < 0 else value


def _is_host(value):
    labels = value.rstrip(".").split(".")
    return bool(value) and len(value) <= 253 and all(
        label and len(label) <= 63 and label[0] != "-" and label[-1] != "-"
        and all(c.isalnum() and c.isascii() or c in "-_" for c in label) for label in labels)


def _ip(value, version=None):
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    return version is None or addr.version == version


def _cidr(value, version=None):
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value and (version is None or net.version == version)


def _macaddr(value):
    parts = value.split(":")
    return len(parts) == 6 and all(len(p) in (1, 2) and all(c in "0123456789abcdefABCDEF" for c in p)
                                   for p in parts)


def _port(value):
    n = _number(value, unsigned=True)
    return n is not None and n <= 65535


def _simple(name, value):
    checks = {
        "string": lambda v: True,
        "integer": lambda v: _number(v) is not None,
        "uinteger": lambda v: _number(v, unsigned=True) is not None,
        "float": lambda v: _number(v, integer=False) is not None,
        "ufloat": lambda v: _number(v, unsigned=True, integer=False) is not None,
        "bool": lambda v: v in ("0", "1", "yes", "no", "on", "off", "true", "false",
                                "enabled", "disabled"),
        "port": _port,
        "portrange": lambda v: all(_port(p) for p in v.split("-", 1)) and v.count("-") <= 1,
        "ipaddr": _ip,
        "ip4addr": lambda v: _ip(v, 4),
        "ip6addr": lambda v: _ip(v, 6),
        "cidr": _cidr,
        "cidr4": lambda v: _cidr(v, 4),
        "cidr6": lambda v: _cidr(v, 6),
        "ipmask": lambda v: _ip(v) or _cidr(v),
        "ipmask4": lambda v: _ip(v, 4) or _cidr(v, 4),
        "ipmask6": lambda v: _ip(v, 6) or _cidr(v, 6),
        "netmask4": lambda v: _ip(v, 4) and _contiguous(v),
        "macaddr": _macaddr,
        "hostname": _is_host,
        "host": lambda v: _ip(v) or _is_host(v),
        "network": lambda v: bool(v) and all(c.isalnum() or c == "_" for c in v),
        "uciname": lambda v: bool(v) and all(c.isalnum() and c.isascii() or c == "_" for c in v),
        "hexstring": lambda v: len(v) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in v),
        "file": os.path.isfile,
        "directory": os.path.isdir,
        "device": lambda v: os.path.exists(v) and not os.path.isdir(v),
    }
    check = checks.get(name)
    return None if check is None else check(value)


def _contiguous(value):
    bits = int(ipaddress.ip_address(value))
    inverted = ~bits & 0xFFFFFFFF
    return inverted & (inverted + 1) == 0


def check(datatype, value):
    """Does `value` satisfy `datatype`? Unknown datatypes fail."""
    name, args = parse_type(datatype)
    if name == "=":
        return value == args[0]
    if name == "or":
        return any(check(a, value) for a in args)
    if name == "and":
        return all(check(a, value) for a in args)
    if name == "not":
        return bool(args) and not check(args[0], value)
    if name == "list":
        return bool(args) and all(check(args[0], v) for v in value.split())
    if name in ("min", "max", "range"):
        n = _number(value, integer=False)
        limits = [_number(a, integer=False) for a in args]
        if n is None or None in limits or not limits:
            return False
        if name == "min":
            return n >= limits[0]
        if name == "max":
            return n <= limits[0]
        return len(limits) == 2 and limits[0] <= n <= limits[1]
    if name in ("minlength", "maxlength", "rangelength"):
        limits = [_number(a) for a in args]
        if None in limits or not limits:
            return False
        if name == "minlength":
            return len(value) >= limits[0]
        if name == "maxlength":
            return len(value) <= limits[0]
        return len(limits) == 2 and limits[0] <= len(value) <= limits[1]
    result = _simple(name, value)
    return bool(result)


# ---------------------------------------------------------------- rules

class Rule:
    def __init__(self, text):
        self.option, _, rest = text.partition(":")
        # the default follows the last ':' outside parentheses and quotes
        depth, quote, cut = 0, None, None
        for i, c in enumerate(rest):
            if quote:
                quote = None if c == quote else quote
            elif c in "\"'":
                quote = c
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == ":" and depth == 0:
                cut = i
                break
        self.datatype = rest if cut is None else rest[:cut]
        self.default = None if cut is None else rest[cut + 1:]
        name, args = parse_type(self.datatype)
        self.is_list = name == "list"
        self.item_type = args[0] if self.is_list and args else self.datatype
        base = parse_type(self.item_type)[0]
        self.numeric = base in NUMERIC


def _shell_quote(value):
    return "'" + value.replace("'", "'\\''") + "'"


def _assign(rule, value):
    return f"{rule.option}={value if rule.numeric else _shell_quote(value)}; "


def rules_as_jshn(package, type_, rules):
    parts = ["json_add_object; ", f'json_add_string "package" "{package}"; ',
             f'json_add_string "type" "{type_}"; ', 'json_add_object "data"; ']
    parts += [f'json_add_string "{r.option}" "{r.datatype}"; ' for r in rules]
    parts.append("json_close_object; json_close_object; ")
    return "".join(parts)


def _load_section(package, section):
    from pyprocd.uci.model import UciError
    from pyprocd.uci.store import Store

    try:
        pkg = Store(os.environ.get("UCI_CONFIG_DIR") or "/etc/config").load(package)
    except (UciError, OSError):
        return None
    return pkg.section(section)


def validate_section(package, type_, section, rules):
    """-> (shell text, report lines, exit code)."""
    sec = _load_section(package, section)
    out, report, failed = [], [], False
    where = f"{package}.{section}"
    for rule in rules:
        opt = sec.option(rule.option) if sec is not None and sec.type == type_ else None
        if opt is None:
            report.append(f"{where}.{rule.option} is unset and defaults to {rule.datatype} "
                          f"{'(null)' if rule.default is None else rule.default}\n")
            out.append(f"unset -v {rule.option}; " if rule.default is None
                       else _assign(rule, rule.default))
            continue
        if rule.is_list:
            items = opt.value if opt.is_list else opt.value.split()
            good = []
            for i, item in enumerate(items):
                ok = check(rule.item_type, item)
                report.append(f"{where}.{rule.option}[{i}]={item} validates as {rule.datatype} "
                              f"with {'true' if ok else 'false'}\n")
                if ok:
                    good.append(item if rule.numeric else _shell_quote(item))
                failed = failed or not ok
            out.append(rule.option + "=" + LIST_JOIN.join(good) + "; ")
            continue
        value = opt.value if not opt.is_list else " ".join(opt.value)
        ok = check(rule.datatype, value)
        report.append(f"{where}.{rule.option}={value} validates as {rule.datatype} "
                      f"with {'true' if ok else 'false'}\n")
        out.append(_assign(rule, value) if ok else f"unset -v {rule.option}; ")
        failed = failed or not ok
    return "".join(out), "".join(report), FAILED if failed else 0


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2:
        return 0 if check(args[0], args[1]) else 1
    if len(args) < 3:
        _out(sys.stderr, "Usage: validate_data <package> <section_type> <section_name> "
                         "'<option>:<datatype>[:<default>]' ...\n"
                         "       validate_data <datatype> <value>\n")
        return 1
    package, type_, section = args[:3]
    rules = [Rule(text) for text in args[3:]]
    if not section:
        _out(sys.stdout, rules_as_jshn(package, type_, rules))
        return 0
    text, report, code = validate_section(package, type_, section, rules)
    _out(sys.stdout, text)
    _out(sys.stderr, report)
    return code
