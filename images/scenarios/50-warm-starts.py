#!/usr/bin/python3
"""Warm (zygote) against cold starts of a Python service on the router's CPU.

A service that imports json, socket and asyncio and prints one line. The
figure is the time from `service set` to that line in syslog: the set goes
out on the scenario's own bus connection (opened before any clock starts, so
no CLI start is timed) and the log is followed by reading only what syslogd
appended, every 5 ms. Seven cold and seven warm starts alternate (each
service deleted before the next), so the shared host's changing load falls
on both alike; the zygote was warmed by an earlier instance. Then the
memory figure: ten services started cold, their PSS summed, stopped; then
ten warm ones (the zygote counted with them). The groups run one after the
other so the guest's 256 MB holds them and neither group's figure shares
pages with the other; a group stops growing below 40 MiB available. Checks:
every start logs its line, warm services really are forks of the one zygote
and the daemon's own children, deleted services leave no process.
"""

import os
import time

import qt

DIR = "/tmp/qt-warm"
SCRIPT = f"{DIR}/service.py"
PRELOAD = ["json", "socket", "asyncio"]
TIMED = 7   # cold/warm pairs timed
GROUP = 10  # services per group for the memory figure
# Stop adding services to a group below this much available memory (the
# guest has no swap; an OOM kill would end the run, not just the figure).
MEMORY_FLOOR_KIB = 40 * 1024


def instance(name, warm):
    """The same instance both ways, but for the zygote key."""
    entry = {"command": ["/usr/bin/python3", SCRIPT, name], "stdout": True}
    if warm:
        entry["zygote"] = PRELOAD
    return entry


def start(name, warm):
    """Seconds from `service set` to the service's line in syslog, or None."""
    entry = instance(name, warm)
    tail = qt.LogTail()
    try:
        t0 = time.monotonic()
        qt.call("set", {"name": name, "instances": {"i": entry}})
        line = tail.wait_for(lambda text: text.endswith(f"up {name}"), 300)
        return time.monotonic() - t0 if line else None
    finally:
        tail.close()


def pid_of(name):
    return qt.instances(qt.service_list(name, poll=True), name).get("i", {}).get("pid")


def is_warm(pid):
    return b"pyprocd.process.zygote" in b"\0".join(qt.cmdline(pid) or [])


def start_group(prefix, warm, most):
    """Start up to `most` services one after the other while memory allows:
    ([seconds per start], [pids])."""
    times, pids = [], []
    for n in range(most):
        available = qt.meminfo_kib("MemAvailable")
        if available is not None and available < MEMORY_FLOOR_KIB:
            qt.note(f"{prefix}: stopped at {n} services, MemAvailable {available} KiB")
            break
        name = f"{prefix}{n}"
        times.append(start(name, warm))
        pids.append(pid_of(name))
    return times, pids


def stop(names, pids):
    """Delete the services; whether none of their processes is left."""
    for name in names:
        try:
            qt.call("delete", {"name": name})
        except qt.UbusError as e:
            qt.note(f"cleanup: {e}")
    return bool(qt.wait(lambda: not any(p and qt.alive(p) for p in pids), 120))


def stop_group(prefix, pids):
    gone = stop([f"{prefix}{n}" for n in range(len(pids))], pids)
    qt.check(f"{prefix}-group-stopped", gone, f"still alive: {[p for p in pids if qt.alive(p)]}")


def pss_kib(pids):
    return sum(qt.memory_kib(p)[1] or 0 for p in pids if p and qt.alive(p))


def note_memory(label, pids):
    """One line per process: where a group's PSS is (its own pages are Private_Dirty)."""
    for pid in pids:
        r = qt.rollup_kib(pid)
        qt.note(f"{label} {pid}: Rss {r.get('Rss')} Pss {r.get('Pss')} "
                f"Private_Dirty {r.get('Private_Dirty')} Shared_Dirty {r.get('Shared_Dirty')} KiB")


def note_mappings(label, pid, most=6):
    """Where one process's PSS lies, by mapping (anonymous ones together)."""
    by_name, name = {}, None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                parts = line.split()
                if not parts[0].endswith(":"):
                    name = parts[5] if len(parts) > 5 else "[anon]"
                elif parts[0] in ("Pss:", "Private_Dirty:"):
                    pss, dirty = by_name.get(name, (0, 0))
                    by_name[name] = ((pss + int(parts[1]), dirty) if parts[0] == "Pss:"
                                     else (pss, dirty + int(parts[1])))
    except OSError:
        return
    top = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:most]
    qt.note(f"{label} {pid} Pss/Private_Dirty KiB by mapping: "
            + ", ".join(f"{os.path.basename(k)} {p}/{d}" for k, (p, d) in top))


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def timed_pairs(count):
    """Start, time and delete a cold then a warm service, count times: the
    two alternate so the host's changing load falls on both alike.
    ([cold seconds], [warm seconds], [whether each warm one was the zygote's
    fork], [whether each one was deleted without leftovers])."""
    cold, warm, forked, stopped = [], [], [], []
    for n in range(count):
        for warm_start, times in ((False, cold), (True, warm)):
            name = f"qt_t{'warm' if warm_start else 'cold'}{n}"
            times.append(start(name, warm_start))
            pid = pid_of(name)
            if warm_start:
                forked.append(bool(pid and is_warm(pid)))
            stopped.append(stop([name], [pid]))
    return cold, warm, forked, stopped


def main():
    os.makedirs(DIR, exist_ok=True)
    with open(SCRIPT, "w") as f:
        f.write("import json, socket, asyncio, sys, time\n"
                "print('up', sys.argv[1], flush=True)\ntime.sleep(100000)\n")
    qt.bus()  # connected before any clock starts
    qt.note(f"MemAvailable before: {qt.meminfo_kib('MemAvailable')} KiB")
    # The identity's first start is cold while its zygote warms up.
    tail = qt.LogTail()
    up = start("qt_zwarmup", True)
    ready = up is not None and tail.wait_for(lambda line: "] ready (pid" in line, 300)
    tail.close()
    qt.check("zygote-ready", ready, "the daemon never logged its zygote ready")
    qt.check("warm-up-service-stopped", stop(["qt_zwarmup"], [pid_of("qt_zwarmup")]))

    cold, warm, forked, stopped = timed_pairs(TIMED)
    qt.check("timed-starts-log-their-line", all(t is not None for t in cold + warm),
             f"cold {cold}, warm {warm}")
    qt.check("timed-warm-starts-are-forks-of-the-zygote", all(forked), f"{forked}")
    qt.check("timed-services-deleted-without-leftovers", all(stopped), f"{stopped}")
    qt.note(f"starts, cold: {' '.join(f'{t:.3f}' for t in cold if t is not None)}")
    qt.note(f"starts, zygote: {' '.join(f'{t:.3f}' for t in warm if t is not None)}")
    if all(t is not None for t in cold + warm):
        c, w = median(cold), median(warm)
        qt.figure(f"python-service-start-cold-median-of-{len(cold)}", f"{c:.3f}", "s")
        qt.figure(f"python-service-start-zygote-median-of-{len(warm)}", f"{w:.3f}", "s")
        qt.figure("python-service-start-zygote/cold", f"{w / c:.3f}", "")

    started, cold_pids = start_group("qt_cold", False, GROUP)
    cold_pss = pss_kib(cold_pids)
    note_memory("cold service", cold_pids[:2])
    note_mappings("cold service", cold_pids[0])
    qt.check("cold-group-logs-its-lines", started and all(t is not None for t in started),
             f"cold {started}")
    stop_group("qt_cold", cold_pids)
    started, warm_pids = start_group("qt_warm", True, len(cold_pids))
    zygote = [p for p in _children(qt.daemon_pid()) if is_warm(p) and p not in warm_pids]
    # the zygote's own children too, if any (a helper lives only while it starts one)
    helpers = [kid for z in zygote for kid in _descendants(z)]
    warm_pss = pss_kib(sorted(set(warm_pids + zygote + helpers)))
    qt.note(f"zygote {zygote}, its children {helpers}")
    note_memory("zygote", zygote)
    note_memory("zygote's child", helpers)
    note_memory("warm service", warm_pids[:2])
    for label, pids in (("zygote", zygote), ("zygote's child", helpers), ("warm service", warm_pids)):
        if pids:
            note_mappings(label, pids[0])
    qt.check("warm-group-logs-its-lines", started and all(t is not None for t in started),
             f"warm {started}")
    qt.check("warm-starts-are-forks-of-the-zygote", all(p and is_warm(p) for p in warm_pids),
             f"warm pids {warm_pids}")
    qt.check("warm-services-are-the-daemons-children",
             all(p and int(qt.stat_fields(p)[1]) == qt.daemon_pid() for p in warm_pids),
             "a warm service's parent is not the daemon")
    qt.check("one-zygote-serves-them-all", len(zygote) == 1, f"zygote pids {zygote}")
    stop_group("qt_warm", warm_pids)
    if cold_pss and warm_pss:
        count = len(cold_pids)
        qt.figure(f"pss-{count}-python-services-cold", f"{cold_pss / 1024:.1f}", "MiB")
        qt.figure(f"pss-{count}-python-services-zygote", f"{warm_pss / 1024:.1f}", "MiB")
        qt.figure("pss-zygote/cold", f"{warm_pss / cold_pss:.2f}", "")
    qt.finish()


def _descendants(pid):
    found = []
    for kid in _children(pid):
        found += [kid, *_descendants(kid)]
    return found


def _children(pid):
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:  # it exited meanwhile
        pass
    return kids


if __name__ == "__main__":
    main()
