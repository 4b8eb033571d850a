"""Instance specs: procd's instance keys parsed and validated into immutable objects.

What each key is, how it parses, whether it restarts an instance and how
`list` shows it lives in one table, pyprocd.core.schema; this module builds
the spec from it. See there for the type rules and pyprocd's deliberate
deviations from procd.
"""

from pyprocd.common import atoi  # noqa: F401 - the one atoi, re-exported for the core
from pyprocd.core.schema import (  # noqa: F401 - re-exported: the core's names for them
    DEFAULT_RESPAWN,
    DEFAULT_TERM_TIMEOUT,
    DEFAULT_WATCHDOG_TIMEOUT,
    INSTANCE_KEYS,
    MAX_TIMER_SECONDS,
    Parse,
    is_array,
    is_bool,
    is_int32,
    is_str,
    is_table,
)


def _fields():
    """Spec field -> default: the keys' fields plus the spec's own bookkeeping."""
    fields = {"name": None, "raw": None}  # raw: the submitted table, untouched
    for key in INSTANCE_KEYS:
        fields.update(key.fields)
    # Why this instance must not start (invalid config, unknown user, ...):
    # pyprocd's additions to the `errors` list. Compared, so fixing the
    # config restarts the instance.
    fields["problems"] = ()
    fields["warnings"] = ()  # logged, not blocking
    return fields


FIELDS = _fields()
# Compared fields decide whether a running instance restarts on
# re-submission (spec §4.5); the others never restart it.
COMPARED = tuple(f for key in INSTANCE_KEYS if key.compared for f in key.fields) + ("problems",)
NOT_COMPARED = frozenset(FIELDS) - frozenset(COMPARED)


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


def parse_instance(name, raw, facts, respawn_defaults=DEFAULT_RESPAWN):
    """Parse one instance table (already known to be a dict) into an InstanceSpec."""
    p = Parse(raw, facts, respawn_defaults)
    for key in INSTANCE_KEYS:
        if key.name in raw:
            key.parse(p, raw[key.name])
    return InstanceSpec(name=name, raw=raw, problems=tuple(p.problems),
                        warnings=tuple(p.warnings), **p.kw)


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
