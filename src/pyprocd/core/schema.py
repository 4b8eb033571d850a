"""The instance keys of procd's `service set`, one row each: the one home of the schema.

A row says everything pyprocd knows about a key: its blobmsg type, how it
is parsed into the instance spec (and which spec fields it fills, with their
defaults), whether a change restarts a running instance (spec §4.5), how
and where `list` shows it (the rows are in `list` order, §5), how an option
of /etc/config/pyprocd becomes it (`uci`: a conversion kind the daemon's
settings reader implements) and how procd.sh's `procd_set_param` builds it
(`sh`: spec §7; None = no procd_set_param for it). Parsing, the restart
diff, `list`, the UCI translation and the tests walk these rows: a new key
is one new row.

A few rows are not keys but `list` entries of the running instance
(running, pid, exit_code, and pyprocd's verbose extensions): they have no
type and no parser, only their place in the listing.

Type rules follow procd's blobmsg policies: a value of the wrong type is
treated as absent, so every init script that works with procd parses the
same way here. Where procd is unsafe pyprocd deviates on purpose, visibly
(instance errors, listed as `errors`, block starting):

* An instance procd would silently drop as *invalid* (nice out of range,
  empty or non-string command, non-string env/limits/... values) is kept,
  listed with `running: false` and an `errors` entry saying why.
* An unknown `user`/`group`, or one that is not a string, is an instance
  error, never a root process.
* `respawn`/`watchdog` elements may be strings (what procd.sh sends) or
  integers (procd misreads those as 0); anything else is an instance error.
* A `command` that is not an array and a `reload_signal` that is no signal
  are instance errors.

Integers follow procd's C semantics: strings go through `atoi`, which
saturates at the 32-bit int range (what the C library gives on the 32-bit
routers). procd arms its timers in int milliseconds, so a timeout above
MAX_TIMER_SECONDS cannot mean anything there; it is capped (with a warning)
so that no timer is beyond what the loop can wait for. Negative respawn
values mean what 0 means to procd (never count a crash, never give up,
respawn at once); pyprocd stores and lists that 0, with a warning.
"""

import _signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)

from pyprocd.common import INT32_MAX, INT32_MIN, LOG_DAEMON, atoi, clamp_int32

DEFAULT_TERM_TIMEOUT = 5
DEFAULT_RESPAWN = (3600, 5, 5)  # threshold s, timeout s, retry
DEFAULT_WATCHDOG_TIMEOUT = 30
MAX_TIMER_SECONDS = INT32_MAX // 1000  # procd's timers: int milliseconds

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}

# setrlimit names of procd's `limits` table (spec §3.11)
LIMIT_NAMES = (
    "as", "core", "cpu", "data", "fsize", "memlock", "nofile", "nproc", "rss",
    "stack", "nice", "rtprio", "msgqueue", "sigpending",
)

# blobmsg types, as procd's policies name them
ARRAY, TABLE, STRING, INT32, BOOL = "ARRAY", "TABLE", "STRING", "INT32", "BOOL"


def is_str(v):
    return type(v) is str


def is_int32(v):
    return type(v) is int and INT32_MIN <= v <= INT32_MAX


def is_bool(v):
    return type(v) is bool


def is_table(v):
    return type(v) is dict


def is_array(v):
    return type(v) is list


TYPE_CHECKS = {ARRAY: is_array, TABLE: is_table, STRING: is_str, INT32: is_int32, BOOL: is_bool}


def is_signal(n):
    return 0 < n < _signal.NSIG


def limit_value_ok(text):
    """'unlimited' or 'soft [hard]' in unsigned decimals, soft <= hard."""
    if text == "unlimited":
        return True
    parts = text.split()
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() and p.isascii() for p in parts):
        return False
    return len(parts) == 1 or int(parts[0]) <= int(parts[1])


class Parse:
    """One instance table being parsed: what the row parsers read and write."""

    __slots__ = ("raw", "facts", "respawn_defaults", "problems", "warnings", "kw")

    def __init__(self, raw, facts, respawn_defaults):
        self.raw = raw
        self.facts = facts
        self.respawn_defaults = respawn_defaults
        self.problems = []  # block starting; listed as `errors`
        self.warnings = []  # logged only
        self.kw = {}  # spec field -> value


class Key:
    """One row: see the module docstring for the columns."""

    __slots__ = ("name", "type", "fields", "parse", "compared", "dump", "verbose", "uci", "sh")

    def __init__(self, name, type_=None, fields=None, parse=None, compared=False, dump=None,
                 verbose=False, uci=None, sh=None):
        self.name = name
        self.type = type_
        self.fields = fields if fields is not None else ({name: None} if type_ else {})
        self.parse = parse if parse is not None or type_ is None else _copy(type_, name)
        self.compared = compared
        self.dump = dump  # dump(inst, spec) -> value, None = not shown
        self.verbose = verbose  # shown only by `list` with verbose
        self.uci = uci
        self.sh = sh

    def __repr__(self):
        return f"Key({self.name!r})"


# -- parsers: parse(p, value), called when the key is present ------------------------------


def _copy(type_, field):
    check = TYPE_CHECKS[type_]

    def parse(p, value):
        if check(value):
            p.kw[field] = value
    return parse


def _timer_seconds(p, seconds, what):
    if seconds > MAX_TIMER_SECONDS:
        p.warnings.append(f"{what} {seconds} s capped to {MAX_TIMER_SECONDS} s")
        return MAX_TIMER_SECONDS
    return seconds


def _string_list(p, value, key):
    """ARRAY of STRING; non-strings make the instance invalid (procd rule)."""
    if type(value) is not list:
        return None
    if not all(is_str(v) for v in value):
        p.problems.append(f"invalid instance: '{key}' must contain only strings")
        return None
    return tuple(value)


def _string_table(p, value, key):
    if type(value) is not dict:
        return None
    if not all(is_str(v) for v in value.values()):
        p.problems.append(f"invalid instance: '{key}' values must be strings")
        return None
    return tuple(sorted(value.items()))


def _numbers(p, value, key):
    """respawn/watchdog elements: strings (atoi, as procd) or integers."""
    out = []
    for v in value:
        if is_str(v):
            out.append(atoi(v))
        elif type(v) is int:
            out.append(clamp_int32(v))
        else:
            p.problems.append(f"invalid instance: '{key}' values must be strings or integers")
            return None
    return out


def _parse_command(p, command):
    with_bundle = is_str(p.raw.get("bundle"))
    if type(command) is not list:
        if not with_bundle:
            p.problems.append("invalid instance: 'command' must be an array of strings")
    elif not with_bundle and not command:
        p.problems.append("invalid instance: 'command' is empty")
    elif not all(is_str(a) for a in command):
        if not with_bundle:
            p.problems.append("invalid instance: 'command' must contain only strings")
    elif command:
        p.kw["command"] = tuple(command)


def _parse_term_timeout(p, value):
    if is_int32(value):
        p.kw["term_timeout"] = _timer_seconds(p, value, "term_timeout")


def _parse_error(p, value):
    errors = _string_list(p, value, "error")
    if errors is not None:
        p.kw["errors"] = errors


def _string_table_parser(key):
    def parse(p, value):
        table = _string_table(p, value, key)
        if table is not None:
            p.kw[key] = table
    return parse


def _parse_data(p, value):
    if type(value) is dict:
        p.kw["data"] = dict(sorted(value.items()))


def _parse_limits(p, value):
    # procd ignores unknown names and unparsable values; so do we, but say so.
    limits = _string_table(p, value, "limits")
    if limits is None:
        return
    for name, text in limits:
        if name not in LIMIT_NAMES:
            p.warnings.append(f"limits: unknown limit '{name}' ignored")
        elif not limit_value_ok(text):
            p.warnings.append(f"limits: cannot parse {name}='{text}', ignored")
    p.kw["limits"] = limits


def _string_list_parser(key, resolve=None):
    def parse(p, value):
        items = _string_list(p, value, key)
        if items is not None:
            p.kw[key] = items
            if resolve is not None and items:
                field, lookup = resolve
                p.kw[field] = tuple(getattr(p.facts, lookup)(item) for item in items)
    return parse


def _parse_file(p, value):
    files = _string_list(p, value, "file")
    if files is None:
        return
    p.kw["file"] = files
    try:
        p.kw["file_md5"] = tuple(p.facts.file_md5(path) for path in files)
    except OSError as e:  # a FIFO, a device, a file over the size cap
        p.problems.append(f"invalid instance: file {e}")


def _parse_reload_signal(p, sig):
    if is_int32(sig):
        if sig and not is_signal(sig):
            p.problems.append(f"invalid instance: reload_signal {sig} is not a signal")
        else:
            p.kw["reload_signal"] = sig


def _parse_respawn(p, value):
    if type(value) is not list:
        return
    numbers = _numbers(p, value, "respawn")
    if numbers is None:
        return
    values = list(p.respawn_defaults)
    for i, n in enumerate(numbers[:3]):
        values[i] = n
    if min(values) < 0:
        p.warnings.append(f"respawn {values}: a negative value means 0")
        values = [max(0, n) for n in values]
    values[1] = _timer_seconds(p, values[1], "respawn timeout")
    p.kw["respawn"] = True
    p.kw["respawn_threshold"], p.kw["respawn_timeout"], p.kw["respawn_retry"] = values


def _parse_watchdog(p, value):
    if type(value) is not list:
        return
    numbers = _numbers(p, value, "watchdog")
    if numbers is None:
        return
    mode = numbers[0] if numbers else 0
    timeout = numbers[1] if len(numbers) > 1 else 0
    p.kw["watchdog_mode"] = mode if 0 <= mode <= 2 else 0
    timeout = timeout if timeout > 0 else DEFAULT_WATCHDOG_TIMEOUT
    p.kw["watchdog_timeout"] = _timer_seconds(p, timeout, "watchdog timeout")


def _parse_user(p, user):
    """Resolved now, fail-closed: unknown names are errors, never root."""
    if not is_str(user):
        p.problems.append("invalid instance: 'user' must be a string")
        return
    ids = p.facts.lookup_user(user)
    if ids is None:
        p.problems.append(f"user '{user}' not found: not starting (pyprocd never falls back to root)")
    else:
        p.kw["user"] = user
        p.kw["uid"], p.kw["gid"] = ids


def _parse_group(p, group):
    if not is_str(group):
        p.problems.append("invalid instance: 'group' must be a string")
        return
    gid = p.facts.lookup_group(group)
    if gid is None:
        p.problems.append(f"group '{group}' not found: not starting")
    else:
        p.kw["group"] = group
        p.kw["gid"] = gid


def _parse_jail(p, jail):
    """Kept as given: the process layer's jail checks every sub-key when it starts the
    instance (a value it cannot honour is then the instance's error). pyprocd has a
    jail of its own, so `requirejail` is always met."""
    if type(jail) is not dict:
        return
    p.kw["jail"] = jail


JAIL_LISTED = ("procfs", "sysfs", "ubus", "log", "ronly", "netns", "userns", "cgroupsns")


def _jailed(spec):
    return spec.jail is not None and not spec.trace


def _dump_jail(inst, spec):
    """procd's jail entry: name/hostname when set, then every flag as a boolean
    (`udebug` is not listed; `console` says whether a console fd is attached)."""
    if not _jailed(spec):
        return None
    jail = spec.jail
    out = {key: jail[key] for key in ("name", "hostname") if type(jail.get(key)) is str}
    for key in JAIL_LISTED:
        out[key] = jail.get(key) is True
    out["console"] = False
    return out


def _dump_jail_mount(inst, spec):
    mounts = spec.jail.get("mount") if _jailed(spec) else None
    if type(mounts) is not dict:
        return None
    return {path: value for path, value in mounts.items() if type(value) is str} or None


def _dump_jail_setns(inst, spec):
    setns = spec.jail.get("setns") if _jailed(spec) else None
    return setns if type(setns) is list and setns else None


def _parse_triggers(p, value):
    if type(value) is list:
        p.kw["triggers"] = value


def _parse_nice(p, nice):
    if is_int32(nice):
        if -20 <= nice <= 20:
            p.kw["nice"] = nice
        else:
            p.problems.append(f"invalid instance: nice {nice} outside -20..20")


def _parse_facility(p, name):
    if is_str(name):
        code = FACILITIES.get(name.lower())
        if code is None:
            p.warnings.append(f"unknown log facility '{name}', using daemon")
        else:
            p.kw["facility"] = code << 3


# -- list dumpers: dump(inst, spec) -> value or None -------------------------------------------


def _field(name, convert=None):
    def dump(inst, spec):
        value = getattr(spec, name)
        if not value:
            return None
        return convert(value) if convert is not None else value
    return dump


def _dump_command(inst, spec):
    if spec.command:
        return list(spec.command)
    command = spec.raw.get("command")
    if type(command) is list and spec.problems:
        return command  # show what was refused
    return None


def _dump_errors(inst, spec):
    errors = list(spec.errors) + list(spec.problems)
    if inst.spawn_error:
        errors.append(inst.spawn_error)
    return errors or None


def _dump_respawn(inst, spec):
    if not inst.respawn:
        return None
    return {"threshold": spec.respawn_threshold, "timeout": spec.respawn_timeout,
            "retry": spec.respawn_retry}


def _dump_watchdog(inst, spec):
    if not inst.wd_mode:
        return None
    return {"mode": inst.wd_mode, "timeout": inst.wd_timeout}


def _parse_zygote(p, value):
    """`zygote`: the modules a warm interpreter has imported (process/zygote.py)."""
    modules = _string_list(p, value, "zygote")
    if modules is None:
        return
    if not all(m and all(part.isidentifier() for part in m.split(".")) for m in modules):
        p.problems.append("invalid instance: 'zygote' must list importable module names")
        return
    p.kw["zygote"] = modules


def _true_or_none(name):
    return lambda inst, spec: True if getattr(spec, name) else None


# -- the table, in `list` order -----------------------------------------------------------

KEYS = (
    Key("running", dump=lambda inst, spec: inst.running),
    Key("pid", dump=lambda inst, spec: inst.pid if inst.running else None),
    Key("command", ARRAY, parse=_parse_command, compared=True, dump=_dump_command,
        uci="array", sh="array"),
    Key("bundle", STRING, compared=True, dump=_field("bundle")),
    Key("term_timeout", INT32, {"term_timeout": DEFAULT_TERM_TIMEOUT}, _parse_term_timeout,
        compared=True, dump=lambda inst, spec: spec.term_timeout, uci="int", sh="int"),
    Key("exit_code", dump=lambda inst, spec: None if inst.running else inst.exit_code),
    Key("error", ARRAY, {"errors": ()}, _parse_error, compared=True, uci="message", sh="error"),
    Key("errors", dump=_dump_errors),  # `error`, pyprocd's problems and the spawn error
    Key("env", TABLE, {"env": ()}, _string_table_parser("env"), compared=True,
        dump=_field("env", dict), uci="table", sh="table"),
    Key("data", TABLE, parse=_parse_data, dump=_field("data"), uci="table", sh="table"),
    Key("limits", TABLE, {"limits": ()}, _parse_limits, compared=True,
        dump=_field("limits", dict), uci="table", sh="table"),
    Key("netdev", ARRAY, {"netdev": (), "netdev_ifindex": ()},
        _string_list_parser("netdev", ("netdev_ifindex", "ifindex")), compared=True,
        dump=_field("netdev", list), uci="array", sh="array"),
    Key("reload_signal", INT32, {"reload_signal": 0}, _parse_reload_signal, compared=True,
        dump=_field("reload_signal"), uci="signal", sh="signal"),
    Key("respawn", ARRAY,
        {"respawn": False, "respawn_threshold": DEFAULT_RESPAWN[0],
         "respawn_timeout": DEFAULT_RESPAWN[1], "respawn_retry": DEFAULT_RESPAWN[2]},
        _parse_respawn, compared=True, dump=_dump_respawn, uci="respawn", sh="array"),
    Key("trace", BOOL, {"trace": False}, compared=True, dump=_true_or_none("trace"), uci="bool"),
    Key("no_new_privs", BOOL, {"no_new_privs": False}, compared=True,
        dump=_true_or_none("no_new_privs"), uci="bool", sh="bool"),
    Key("seccomp", STRING, compared=True, dump=_field("seccomp"), uci="string", sh="string"),
    Key("capabilities", STRING, compared=True, dump=_field("capabilities"), uci="string",
        sh="string"),
    Key("pidfile", STRING, compared=True, dump=_field("pidfile"), uci="string", sh="string"),
    # resolved names only (procd lists only those); the ids are compared too
    Key("user", STRING, {"user": None, "uid": 0, "gid": 0}, _parse_user, compared=True,
        dump=_field("user"), uci="string", sh="string"),
    Key("group", STRING, {"group": None, "gid": 0}, _parse_group, compared=True, dump=_field("group"),
        uci="string", sh="string"),
    Key("jail", TABLE, parse=_parse_jail, compared=True, dump=_dump_jail, uci="jail"),
    Key("mount", dump=_dump_jail_mount),  # of the jail table, listed beside it
    Key("setns", dump=_dump_jail_setns),
    Key("extroot", STRING, compared=True, dump=_field("extroot"), uci="string", sh="string"),
    Key("overlaydir", STRING, compared=True, dump=_field("overlaydir"), uci="string",
        sh="string"),
    Key("tmpoverlaysize", STRING, compared=True, dump=_field("tmpoverlaysize"), uci="string",
        sh="string"),
    Key("triggers", ARRAY, parse=_parse_triggers, dump=_field("triggers"), verbose=True),
    Key("watchdog", ARRAY, {"watchdog_mode": 0, "watchdog_timeout": DEFAULT_WATCHDOG_TIMEOUT},
        _parse_watchdog, compared=True, dump=_dump_watchdog, uci="array", sh="array"),
    # pyprocd's additions to `list`: verbose only, so that plain `list` stays procd's
    Key("failed", dump=lambda inst, spec: True if inst.failed else None, verbose=True),
    Key("respawn_count", dump=lambda inst, spec: inst.respawn_count or None, verbose=True),
    # pyprocd extension: stop signals go to the instance's whole process group
    Key("group_kill", BOOL, {"group_kill": False}, compared=True,
        dump=_true_or_none("group_kill"), verbose=True, uci="bool"),
    # pyprocd extension: start a Python instance warm, forked from an interpreter that has
    # these modules imported, instead of exec'ing a cold one
    Key("zygote", ARRAY, {"zygote": None}, _parse_zygote, compared=True,
        dump=lambda inst, spec: None if spec.zygote is None else list(spec.zygote),
        verbose=True, uci="array"),
    Key("exits", dump=lambda inst, spec: [e.as_dict() for e in inst.exits] or None,
        verbose=True),
    # not listed
    Key("file", ARRAY, {"file": (), "file_md5": ()}, _parse_file, compared=True,
        uci="array", sh="array"),
    Key("watch", ARRAY, {"watch": ()}, _string_list_parser("watch"), uci="array", sh="array"),
    Key("nice", INT32, {"nice": 0}, _parse_nice, compared=True, uci="int", sh="int"),
    Key("facility", STRING, {"facility": LOG_DAEMON}, _parse_facility, compared=True,
        uci="string", sh="string"),
    Key("stdout", BOOL, {"stdout": False}, uci="bool", sh="bool"),
    Key("stderr", BOOL, {"stderr": False}, uci="bool", sh="bool"),
)

INSTANCE_KEYS = tuple(k for k in KEYS if k.type is not None)  # what `set` parses
LISTED = tuple(k for k in KEYS if k.dump is not None)  # what `list` shows, in order
