"""What the kernel says about processes, read from /proc.

Every supervisor is measured through the same lens: a service "runs" when a
process with its exact command line exists under the supervisor's process
tree, whatever the supervisor itself claims.  Processes vanish while we read
them, so every reader treats a missing file as "no such process".
"""

import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def cmdline(pid):
    """argv of pid as a tuple, () for a zombie or kernel thread, None if gone."""
    raw = _read(f"/proc/{pid}/cmdline", "rb")
    if raw is None:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0")[:-1])


def _stat_fields(pid):
    """Fields of /proc/pid/stat after the command name (which may hold spaces)."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    return raw[raw.rfind(")") + 2:].split()


def parent(pid):
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def is_zombie(pid):
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def children(pid):
    """Direct children of pid, over all its threads."""
    found = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return found
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            found.extend(int(p) for p in text.split())
    return found


def descendants(roots):
    """Every live process under roots (roots included), breadth first."""
    seen = []
    queue = [pid for pid in roots if os.path.exists(f"/proc/{pid}")]
    known = set(queue)
    while queue:
        pid = queue.pop(0)
        seen.append(pid)
        for child in children(pid):
            if child not in known:
                known.add(child)
                queue.append(child)
    return seen


def matching(roots, expected):
    """{argv: pid} for processes under roots whose argv is in the set expected."""
    found = {}
    for pid in descendants(roots):
        argv = cmdline(pid)
        if argv in expected:
            found[argv] = pid
    return found


def usage(pid):
    """One process's counters: cpu_ns, cpu_ticks, voluntary switches, rss_kb, pss_kb."""
    fields = _stat_fields(pid)
    status = _read(f"/proc/{pid}/status")
    if fields is None or status is None:
        return None
    out = {
        # utime + stime, in clock ticks (coarse: 10 ms), as /proc/pid/stat gives them
        "cpu_ticks": int(fields[11]) + int(fields[12]),
        "voluntary_switches": 0,
        "rss_kb": 0,
        "pss_kb": 0,
    }
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            out["voluntary_switches"] = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            out["rss_kb"] = int(line.split()[1])
    # schedstat's first field is the time on CPU in ns: far finer than ticks
    sched = _read(f"/proc/{pid}/schedstat")
    out["cpu_ns"] = int(sched.split()[0]) if sched else out["cpu_ticks"] * 10**9 // CLOCK_TICKS
    rollup = _read(f"/proc/{pid}/smaps_rollup")
    for line in (rollup or "").splitlines():
        if line.startswith("Pss:"):
            out["pss_kb"] = int(line.split()[1])
            break
    return out


def total_usage(pids):
    """Sum of usage() over pids that still exist, with how many were counted."""
    total = {"cpu_ns": 0, "cpu_ticks": 0, "voluntary_switches": 0, "rss_kb": 0, "pss_kb": 0}
    counted = 0
    for pid in pids:
        one = usage(pid)
        if one is None:
            continue
        counted += 1
        for key in total:
            total[key] += one[key]
    total["processes"] = counted
    return total


def mentions(pid, marker):
    """True if marker appears in pid's command line, environment or working dir."""
    argv = cmdline(pid)
    if argv and any(marker in part for part in argv):
        return True
    env = _read(f"/proc/{pid}/environ", "rb")
    if env and marker.encode() in env:
        return True
    try:
        return marker in os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False


def processes_mentioning(marker):
    """Live (non-zombie) pids anywhere on the machine that mention marker."""
    if len(marker) < 8:
        # "" or "/" would match every process: callers kill what this returns
        raise ValueError(f"marker too short to be specific: {marker!r}")
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:
            pid = int(name)
            if mentions(pid, marker) and not is_zombie(pid):
                found.append(pid)
    return found


def _inet_inodes():
    """Socket inodes of every TCP/UDP socket (v4 and v6) on the machine."""
    inodes = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        text = _read(f"/proc/net/{table}") or ""
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9:
                inodes.add(fields[9])
    return inodes


def inet_sockets(pids):
    """{pid: count} of TCP/UDP sockets the given processes hold (unix sockets don't count)."""
    inet = _inet_inodes()
    found = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inet:
                found[pid] = found.get(pid, 0) + 1
    return found
