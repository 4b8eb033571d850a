"""Capability sets from a JSON file in the OCI `process.capabilities` shape.

    {"bounding": ["CAP_NET_ADMIN", ...], "effective": [...], "inheritable": [...],
     "permitted": [...], "ambient": [...]}

Read as procd's ujail reads it: names matched case-insensitively, a missing list is
the empty set. Unlike ujail, a name we don't know, or that the running kernel doesn't
have, is an error (the instance does not start) rather than a quietly different set.
Pure Python: parsing needs no cffi; applying goes through shim.
"""

import json

from pyprocd.process.files import UnsafePath, read_regular

# linux/capability.h, CAP_* numbers.
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: number for number, name in enumerate(NAMES)}
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


class CapsError(ValueError):
    """The capabilities file cannot be honoured; the message says why."""


def kernel_last_cap():
    """Highest capability number the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


def mask_to_names(mask):
    return [name for number, name in enumerate(NAMES) if mask >> number & 1]


class CapSets:
    """Five 64-bit masks, one per set."""

    __slots__ = SETS

    def __init__(self, **masks):
        for name in SETS:
            setattr(self, name, masks.get(name, 0))

    def as_dict(self):
        return {name: getattr(self, name) for name in SETS}

    def __repr__(self):
        fields = ", ".join(f"{n}={mask_to_names(getattr(self, n))}" for n in SETS)
        return f"CapSets({fields})"


def parse(document, last_cap=None):
    """CapSets from the decoded JSON (a dict). Raises CapsError."""
    if isinstance(document, dict) and isinstance(document.get("process"), dict):
        document = document["process"].get("capabilities", {})  # a whole OCI config.json
    if not isinstance(document, dict):
        raise CapsError("capabilities: expected a JSON object with bounding/effective/... lists")
    last_cap = kernel_last_cap() if last_cap is None else last_cap
    unknown_keys = sorted(set(document) - set(SETS))
    if unknown_keys:
        raise CapsError(f"capabilities: unknown set(s) {', '.join(unknown_keys)}")
    masks = {name: _parse_list(name, document.get(name, []), last_cap) for name in SETS}
    caps = CapSets(**masks)
    _check_consistency(caps)
    return caps


def _parse_list(set_name, names, last_cap):
    if not isinstance(names, list):
        raise CapsError(f"capabilities: {set_name} must be a list of names")
    mask = 0
    for name in names:
        number = NUMBERS.get(name.upper()) if isinstance(name, str) else None
        if number is None:
            raise CapsError(f"capabilities: unknown capability {name!r} in {set_name}")
        if number > last_cap:
            raise CapsError(f"capabilities: {name} is not supported by this kernel")
        mask |= 1 << number
    return mask


def _check_consistency(caps):
    """What the kernel would refuse in the child, refused here with a readable reason."""
    _subset(caps.effective, caps.permitted, "effective", "permitted")
    _subset(caps.ambient, caps.permitted & caps.inheritable, "ambient",
            "both permitted and inheritable")
    # capset(2) refuses new inheritable capabilities outside the bounding set.
    _subset(caps.inheritable, caps.bounding, "inheritable", "bounding")


def _subset(mask, allowed, what, where):
    extra = mask & ~allowed
    if extra:
        raise CapsError(f"capabilities: {', '.join(mask_to_names(extra))} in {what} "
                        f"but not in {where}")


def load(path, last_cap=None):
    """CapSets from a file. Raises CapsError for unreadable/invalid files."""
    try:
        document = json.loads(read_regular(path))
    except UnsafePath as e:
        raise CapsError(f"capabilities: cannot read {e}") from None
    except OSError as e:
        raise CapsError(f"capabilities: cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise CapsError(f"capabilities: {path} is not valid JSON: {e}") from None
    return parse(document, last_cap)
