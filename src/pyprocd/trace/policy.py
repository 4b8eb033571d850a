"""From syscall counts to the policy file utrace writes (spec/trace.md §6.1).

The counts are keyed by (audit arch, number), as PTRACE_GET_SYSCALL_INFO reports
them; names come from the tracee's own ABI table, never the tracer's. A number with
no name in that table (or an ABI with no table) cannot go into a name-based policy:
it is reported, so the user knows the policy is incomplete.
"""

import json
import os
import tempfile

from pyprocd.process import syscalls

# utrace puts these in every policy with a count of 1 (replacing the real count), so
# that a program's signal handling and exit are always allowed.
FORCED = ("rt_sigaction", "sigreturn", "rt_sigreturn", "exit_group", "exit")

_ARCH_BY_AUDIT = {info.audit_arch: name for name, info in syscalls.ARCHES.items()}


def arch_name(audit_arch):
    """Our arch name for an AUDIT_ARCH_* value, or None when we have no table for it."""
    return _ARCH_BY_AUDIT.get(audit_arch)


def _names_by_number(arch):
    return {nr: name for name, nr in sorted(syscalls.numbers(arch).items(), reverse=True)}


class Unnamed:
    """A syscall the policy cannot name: (audit arch, number, count)."""

    __slots__ = ("audit_arch", "count", "nr")

    def __init__(self, audit_arch, nr, count):
        self.audit_arch, self.nr, self.count = audit_arch, nr, count

    def __str__(self):
        arch = arch_name(self.audit_arch)
        where = arch if arch else f"unknown ABI (audit arch {self.audit_arch:#x})"
        return f"syscall {self.nr} on {where} has no name: called {self.count} time(s)"


def named_counts(counts):
    """counts {(audit arch, nr): n} -> ([(name, n)] in utrace's order, [Unnamed]).

    Order: count descending, ties by syscall number (glibc's stable qsort over a table
    in number order). Calls of the same name from several ABIs add up."""
    merged, first_nr, unnamed = {}, {}, []
    by_arch = {}
    for (audit, nr), n in counts.items():
        by_arch.setdefault(audit, {})[nr] = n
    for audit, numbers in sorted(by_arch.items()):
        arch = arch_name(audit)
        names = _names_by_number(arch) if arch else {}
        for nr, n in sorted(numbers.items()):
            name = names.get(nr)
            if name is None:
                unnamed.append(Unnamed(audit, nr, n))
                continue
            merged[name] = merged.get(name, 0) + n
            first_nr.setdefault(name, nr)
        for name in FORCED:
            if arch and name in syscalls.numbers(arch):
                merged[name] = 1
                first_nr.setdefault(name, syscalls.numbers(arch)[name])
    order = sorted(merged, key=lambda name: (-merged[name], first_nr[name]))
    return [(name, merged[name]) for name in order], unnamed


def policy_text(names):
    """utrace's file, byte for byte: libubox's indented JSON (TAB indent, '": "')."""
    lines = ["{", '\t"defaultAction": "SCMP_ACT_KILL_PROCESS",', '\t"syscalls": [', "\t\t{",
             '\t\t\t"names": [']
    lines += [f"\t\t\t\t{json.dumps(name)}," for name in names]
    if names:
        lines[-1] = lines[-1][:-1]
    lines += ["\t\t\t],", '\t\t\t"action": "SCMP_ACT_ALLOW"', "\t\t}", "\t]", "}"]
    return "\n".join(lines) + "\n"


def default_path(directory, program, pid):
    """utrace's name for the output: <dir>/<basename of argv[0]>.<program pid>.json."""
    return os.path.join(directory, f"{os.path.basename(program)}.{pid}.json")


def check_writable(path):
    """Raise OSError unless a file can be created beside `path` (as write() will)."""
    directory = os.path.dirname(path) or "."
    fd, probe = tempfile.mkstemp(dir=directory, prefix=".pyprocd-trace-")
    os.close(fd)
    os.unlink(probe)


def write(path, text):
    """Write atomically (a reader never sees half a policy); raises OSError."""
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".pyprocd-trace-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)   # what fopen(path, "w") would give
        os.rename(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
