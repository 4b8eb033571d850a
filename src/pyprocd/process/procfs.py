"""What /proc says about a process: state, parent, start time, user.

Small and import-free so the spawner can use it without loading the hardening
modules.
"""


def proc_stat(pid):
    """(state, ppid, start_ticks) of pid from /proc/<pid>/stat, or None when it is gone.
    start_ticks is the kernel's starttime (clock ticks after boot): with the pid it
    names one process for good, since a pid can be reused but not back in time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def proc_uid(pid):
    """The real uid of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def start_ticks(pid):
    """The process's start time in clock ticks after boot, or None when it is gone."""
    stat = proc_stat(pid)
    return stat[2] if stat is not None else None
