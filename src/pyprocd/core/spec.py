"""Instance specs: procd's instance keys parsed and validated into immutable objects.

Type rules follow procd's blobmsg policies: a key whose value has the wrong
blobmsg type is treated as absent (procd's parser skips it), so every init
script that works with procd parses the same way here. Where procd is unsafe
pyprocd deviates on purpose, visibly (see `problems` below):

* An instance procd would silently drop as *invalid* (nice out of range, empty
  or non-string command, non-string env/limits/... values) is kept, listed
  with `running: false` and an `errors` entry saying why, and never started.
* An unknown `user`/`group` is an instance error, never a root process.
* `respawn`/`watchdog` elements may be strings (what procd.sh sends) or
  integers (procd misreads those as 0); anything else is an instance error.
* A `user`/`group` that is present but not a string, a `command` that is
  not an array, a `reload_signal` that is no signal: instance errors.

Integers follow procd's C semantics: strings go through `atoi`, which
saturates at the 32-bit int range (what glibc/musl give on the 32-bit
routers). procd arms its timers in int milliseconds, so a timeout above
MAX_TIMER_SECONDS cannot mean anything there; it is capped (and a warning
logged) so that no timer is beyond what the loop can wait for. Negative
respawn values mean what 0 means to procd (never count a crash, never give
up, respawn at once); pyprocd stores and lists that 0, with a warning.
"""

import _signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)

DEFAULT_TERM_TIMEOUT = 5
DEFAULT_RESPAWN = (3600, 5, 5)  # threshold s, timeout s, retry
DEFAULT_WATCHDOG_TIMEOUT = 30
LOG_DAEMON = 3 << 3
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
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


def is_str(v):
    return type(v) is str


def is_int32(v):
    return type(v) is int and -(2**31) <= v < 2**31


def is_bool(v):
    return type(v) is bool


def atoi(text):
    """C atoi(): leading blanks, one optional sign, ASCII digits; anything else
    stops it. Saturates at the 32-bit int range (strtol on a 32-bit target)."""
    text = text.lstrip(" \t\n\r\v\f")
    sign, i = 1, 0
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        i = 1
    j = i
    while j < len(text) and "0" <= text[j] <= "9":
        j += 1
    if j == i:
        return 0
    digits = text[i:j].lstrip("0")[:11]  # more digits than int32 holds: saturated anyway
    return clamp_int32(sign * int(digits or "0"))


def clamp_int32(n):
    return max(INT32_MIN, min(n, INT32_MAX))


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


# Field -> default. Compared fields decide whether a running instance restarts
# on re-submission (spec §4.5); the others (NOT_COMPARED) never restart it.
FIELDS = {
    "name": None,
    "raw": None,  # the submitted table, untouched
    "command": None, "bundle": None,
    "env": (),  # sorted (key, value) pairs
    "data": None,
    "netdev": (), "netdev_ifindex": (), "file": (), "file_md5": (),
    "triggers": None,
    "respawn": False,
    "respawn_threshold": DEFAULT_RESPAWN[0], "respawn_timeout": DEFAULT_RESPAWN[1],
    "respawn_retry": DEFAULT_RESPAWN[2],
    "nice": 0,
    "limits": (),  # sorted (name, value-string) pairs, as submitted
    "watch": (),
    "errors": (),  # the `error` key: blocks starting
    "user": None, "group": None,  # resolved names only (procd lists only those)
    "uid": 0, "gid": 0,
    "stdout": False, "stderr": False,
    "no_new_privs": False, "jail": None, "trace": False, "seccomp": None, "capabilities": None,
    "pidfile": None, "reload_signal": 0, "term_timeout": DEFAULT_TERM_TIMEOUT,
    "facility": LOG_DAEMON, "extroot": None, "overlaydir": None, "tmpoverlaysize": None,
    "watchdog_mode": 0, "watchdog_timeout": DEFAULT_WATCHDOG_TIMEOUT,
    # pyprocd extension: stop signals go to the instance's whole process group
    "group_kill": False,
    # Why this instance must not start (invalid config, unknown user, ...):
    # pyprocd's additions to the `errors` list. Compared, so fixing the
    # config restarts the instance.
    "problems": (),
    "warnings": (),  # logged, not blocking
}
NOT_COMPARED = frozenset({"name", "raw", "data", "triggers", "watch", "stdout", "stderr", "warnings"})
COMPARED = tuple(f for f in FIELDS if f not in NOT_COMPARED)


class InstanceSpec:
    """One instance's configuration, as submitted and as resolved at submission.

    Immutable by convention (use replace()); a plain slotted class rather
    than a dataclass because `dataclasses` pulls in `inspect` and `ast`,
    about 2 MB of RAM in a daemon that must stay small.
    """

    __slots__ = tuple(FIELDS)

    def __init__(self, **values):
        for key, default in FIELDS.items():
            object.__setattr__(self, key, values.pop(key, default))
        if values:
            raise TypeError(f"unknown spec fields: {sorted(values)}")

    def __setattr__(self, key, value):
        raise AttributeError("InstanceSpec is immutable; use replace()")

    def __eq__(self, other):
        if not isinstance(other, InstanceSpec):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in COMPARED)

    __hash__ = None

    def __repr__(self):
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in FIELDS
                          if f != "raw" and getattr(self, f) != FIELDS[f])
        return f"InstanceSpec({shown})"

    def replace(self, **changes):
        values = {f: getattr(self, f) for f in FIELDS}
        values.update(changes)
        return InstanceSpec(**values)

    @property
    def startable(self):
        return not self.problems and not self.errors and (self.command or self.bundle)

    def list_errors(self):
        return list(self.errors) + list(self.problems)


class Facts:
    """Things about the host a spec needs at submission (procd resolves these then).

    The process layer provides the real implementation; tests may fake it.
    """

    def lookup_user(self, name):  # -> (uid, gid) or None
        import pwd

        try:
            pw = pwd.getpwnam(name)
        except (KeyError, UnicodeEncodeError, ValueError):
            return None
        return pw.pw_uid, pw.pw_gid

    def lookup_group(self, name):  # -> gid or None
        import grp

        try:
            return grp.getgrnam(name).gr_gid
        except (KeyError, UnicodeEncodeError, ValueError):
            return None

    def ifindex(self, name):
        import _socket as socket  # C module: `socket` would import enum (~0.8 MB for the daemon's life)

        try:
            return socket.if_nametoindex(name)
        except (OSError, ValueError):
            return 0

    def file_md5(self, path):
        import hashlib

        try:
            with open(path, "rb") as f:
                return hashlib.md5(f.read()).hexdigest()
        except (OSError, ValueError):
            return "0" * 32

    def have_ujail(self):
        import os

        return os.path.exists("/sbin/ujail")


def _string_list(value, key, problems):
    """ARRAY of STRING; non-strings make the instance invalid (procd rule)."""
    if type(value) is not list:
        return None
    if not all(is_str(v) for v in value):
        problems.append(f"invalid instance: '{key}' must contain only strings")
        return None
    return tuple(value)


def _string_table(value, key, problems):
    if type(value) is not dict:
        return None
    if not all(is_str(v) for v in value.values()):
        problems.append(f"invalid instance: '{key}' values must be strings")
        return None
    return tuple(sorted(value.items()))


def _numbers(value, key, problems):
    """respawn/watchdog elements: strings (atoi, as procd) or integers."""
    out = []
    for v in value:
        if is_str(v):
            out.append(atoi(v))
        elif type(v) is int:
            out.append(clamp_int32(v))
        else:
            problems.append(f"invalid instance: '{key}' values must be strings or integers")
            return None
    return out


def _parse_command(raw, problems, kw):
    command = raw.get("command")
    if "command" in raw and type(command) is not list and not is_str(raw.get("bundle")):
        problems.append("invalid instance: 'command' must be an array of strings")
    elif type(command) is list and not raw.get("bundle"):
        if not command:
            problems.append("invalid instance: 'command' is empty")
        elif not all(is_str(a) for a in command):
            problems.append("invalid instance: 'command' must contain only strings")
        else:
            kw["command"] = tuple(command)
    elif type(command) is list and command and all(is_str(a) for a in command):
        kw["command"] = tuple(command)
    if is_str(raw.get("bundle")):
        kw["bundle"] = raw["bundle"]


def _timer_seconds(seconds, what, warnings):
    if seconds > MAX_TIMER_SECONDS:
        warnings.append(f"{what} {seconds} s capped to {MAX_TIMER_SECONDS} s")
        return MAX_TIMER_SECONDS
    return seconds


def _parse_respawn(raw, problems, warnings, kw, respawn_defaults):
    value = raw.get("respawn")
    if type(value) is not list:
        return
    numbers = _numbers(value, "respawn", problems)
    if numbers is None:
        return
    values = list(respawn_defaults)
    for i, n in enumerate(numbers[:3]):
        values[i] = n
    if min(values) < 0:
        warnings.append(f"respawn {values}: a negative value means 0")
        values = [max(0, n) for n in values]
    values[1] = _timer_seconds(values[1], "respawn timeout", warnings)
    kw["respawn"] = True
    kw["respawn_threshold"], kw["respawn_timeout"], kw["respawn_retry"] = values


def _parse_watchdog(raw, problems, warnings, kw):
    value = raw.get("watchdog")
    if type(value) is not list:
        return
    numbers = _numbers(value, "watchdog", problems)
    if numbers is None:
        return
    mode = numbers[0] if numbers else 0
    timeout = numbers[1] if len(numbers) > 1 else 0
    kw["watchdog_mode"] = mode if 0 <= mode <= 2 else 0
    timeout = timeout if timeout > 0 else DEFAULT_WATCHDOG_TIMEOUT
    kw["watchdog_timeout"] = _timer_seconds(timeout, "watchdog timeout", warnings)


def _parse_identity(raw, problems, kw, facts):
    """user/group resolved now, fail-closed: unknown names are errors, never root."""
    user, group = raw.get("user"), raw.get("group")
    for key in ("user", "group"):
        if key in raw and not is_str(raw[key]):
            problems.append(f"invalid instance: '{key}' must be a string")
    if is_str(user):
        ids = facts.lookup_user(user)
        if ids is None:
            problems.append(f"user '{user}' not found: not starting (pyprocd never falls back to root)")
        else:
            kw["user"] = user
            kw["uid"], kw["gid"] = ids
    if is_str(group):
        gid = facts.lookup_group(group)
        if gid is None:
            problems.append(f"group '{group}' not found: not starting")
        else:
            kw["group"] = group
            kw["gid"] = gid


def _parse_limits(raw, problems, warnings, kw):
    # procd ignores unknown names and unparsable values; so do we, but say so.
    limits = _string_table(raw.get("limits"), "limits", problems)
    if limits is None:
        return
    for name, value in limits:
        if name not in LIMIT_NAMES:
            warnings.append(f"limits: unknown limit '{name}' ignored")
        elif not limit_value_ok(value):
            warnings.append(f"limits: cannot parse {name}='{value}', ignored")
    kw["limits"] = limits


def _copy_typed(raw, problems, warnings, kw):
    """Keys that are plain values; a wrong type means absent (procd's policy)."""
    for key in ("seccomp", "capabilities", "pidfile", "extroot", "overlaydir", "tmpoverlaysize"):
        if is_str(raw.get(key)):
            kw[key] = raw[key]
    for key in ("stdout", "stderr", "no_new_privs", "trace", "group_kill"):
        if is_bool(raw.get(key)):
            kw[key] = raw[key]
    if is_int32(raw.get("term_timeout")):
        kw["term_timeout"] = _timer_seconds(raw["term_timeout"], "term_timeout", warnings)
    sig = raw.get("reload_signal")
    if is_int32(sig):
        if sig and not is_signal(sig):
            problems.append(f"invalid instance: reload_signal {sig} is not a signal")
        else:
            kw["reload_signal"] = sig
    if type(raw.get("data")) is dict:
        kw["data"] = dict(sorted(raw["data"].items()))
    if type(raw.get("triggers")) is list:
        kw["triggers"] = raw["triggers"]
    if type(raw.get("jail")) is dict:
        kw["jail"] = raw["jail"]
    if is_str(raw.get("facility")):
        code = FACILITIES.get(raw["facility"].lower())
        if code is None:
            warnings.append(f"unknown log facility '{raw['facility']}', using daemon")
        else:
            kw["facility"] = code << 3


def parse_instance(name, raw, facts, respawn_defaults=DEFAULT_RESPAWN):
    """Parse one instance table (already known to be a dict) into an InstanceSpec."""
    problems, warnings = [], []
    kw = {}
    _parse_command(raw, problems, kw)
    _copy_typed(raw, problems, warnings, kw)
    env = _string_table(raw.get("env"), "env", problems)
    if env is not None:
        kw["env"] = env
    nice = raw.get("nice")
    if is_int32(nice):
        if -20 <= nice <= 20:
            kw["nice"] = nice
        else:
            problems.append(f"invalid instance: nice {nice} outside -20..20")
    for key in ("netdev", "file", "watch", "error"):
        value = _string_list(raw.get(key), key, problems)
        if value is not None:
            kw["errors" if key == "error" else key] = value
    if kw.get("netdev"):
        kw["netdev_ifindex"] = tuple(facts.ifindex(d) for d in kw["netdev"])
    if kw.get("file"):
        try:
            kw["file_md5"] = tuple(facts.file_md5(p) for p in kw["file"])
        except OSError as e:  # a FIFO, a device, a file over the size cap
            problems.append(f"invalid instance: file {e}")
    _parse_limits(raw, problems, warnings, kw)
    _parse_respawn(raw, problems, warnings, kw, respawn_defaults)
    _parse_watchdog(raw, problems, warnings, kw)
    _parse_identity(raw, problems, kw, facts)
    jail = kw.get("jail")
    if jail and jail.get("requirejail") is True and not facts.have_ujail():
        problems.append("invalid instance: jail required but /sbin/ujail is not available")
    return InstanceSpec(
        name=name, raw=raw, problems=tuple(problems), warnings=tuple(warnings), **kw
    )


def needs_restart(old, new, watchdog_self_managed=False):
    """procd's compared fields (spec §4.5): does a running instance restart?

    InstanceSpec equality is exactly the compared set: data, triggers, watch,
    stdout and stderr are left out (NOT_COMPARED).
    Values are compared whole (procd skips the last bytes of list entries: a bug).
    """
    if watchdog_self_managed:
        new = _with_watchdog(new, old.watchdog_mode, old.watchdog_timeout)
    return old != new


def _with_watchdog(spec, mode, timeout):
    return spec.replace(watchdog_mode=mode, watchdog_timeout=timeout)
