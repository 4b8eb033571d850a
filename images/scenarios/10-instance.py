#!/usr/bin/python3
"""Instances on the router: start, respawn, give-up, process attributes, log
lines, stop, and a daemon SIGKILL + restart that re-adopts every instance.

Services are submitted with `pyprocd ubus call service set`, the call an
init.d script's procd_close_service makes; every assertion reads the
guest's own /proc, syslog file or `pyprocd ubus call service list`.
"""

import os
import signal
import subprocess
import time

import qt

SLEEP = "/bin/sleep"


def running_pids(service, names, poll=True):
    """{instance: pid} once every named instance is listed as running, else None."""
    found = qt.instances(qt.service_list(service, poll=poll), service)
    pids = {n: found.get(n, {}).get("pid") for n in names}
    if all(found.get(n, {}).get("running") and pids[n] for n in names):
        return pids
    return None


def start_several():
    argvs = {"a": [SLEEP, "1001"], "b": [SLEEP, "1002"], "c": [SLEEP, "1003"]}
    qt.ubus("set", {"name": "qt_multi", "instances": {
        n: {"command": argv} for n, argv in argvs.items()}})
    qt.wait(lambda: running_pids("qt_multi", argvs), timeout=120)
    pids = running_pids("qt_multi", argvs, poll=False)
    qt.check("all-instances-running", pids, "not every instance of qt_multi listed running")
    if not pids:
        return None
    seen = {n: qt.cmdline(pid) for n, pid in pids.items()}
    want = {n: [a.encode() for a in argv] for n, argv in argvs.items()}
    qt.check("instance-command-in-proc", seen == want, f"/proc cmdlines {seen}")
    qt.check("instances-are-daemon-children",
             all(int(qt.stat_fields(pid)[1]) == qt.daemon_pid() for pid in pids.values()),
             "an instance's parent is not the daemon")
    return pids


def respawn_after_kill(name, delay):
    """SIGKILL the instance; seconds until its successor runs (None: never)."""
    argv = [SLEEP, str(2000 + delay)]
    qt.ubus("set", {"name": name, "instances": {"main": {
        "command": argv, "respawn": ["1", str(delay), "5"]}}})
    first = qt.wait(lambda: running_pids(name, ["main"]), timeout=120)
    if not first:
        qt.check(f"respawn-delay-{delay}s", False, f"{name} never ran")
        return None
    old = first["main"]
    time.sleep(1.2)  # past the 1 s threshold: not counted as a crash
    killed = qt.uptime()
    os.kill(old, signal.SIGKILL)
    new = qt.wait(lambda: [p for p in qt.pids_running(argv) if p != old], timeout=60)
    if not qt.check(f"respawn-after-sigkill-{delay}s", new, f"{name} was not respawned"):
        return None
    # The kernel's record of the successor's start, not when polling saw it.
    gap = qt.start_time(new[0]) - killed
    qt.wait(lambda: running_pids(name, ["main"]), timeout=60)
    listed = running_pids(name, ["main"], poll=False)
    qt.check(f"respawned-pid-listed-{delay}s", listed and listed["main"] == new[0],
             f"list shows {listed}, /proc shows {new}")
    return gap


def crash_loop_gives_up():
    qt.ubus("set", {"name": "qt_crash", "instances": {"main": {
        "command": ["/bin/false"], "respawn": ["3600", "0", "3"]}}})

    def gave_up(poll=True):
        listing = qt.service_list("qt_crash", verbose=True, poll=poll)
        inst = qt.instances(listing, "qt_crash").get("main", {})
        return inst if inst.get("failed") and not inst.get("running") else None

    qt.wait(gave_up, timeout=120)
    inst = gave_up(poll=False)
    qt.check("crash-loop-gives-up", inst, "qt_crash is still respawning or not marked failed")
    if inst:
        time.sleep(2)
        again = qt.instances(qt.service_list("qt_crash", verbose=True), "qt_crash")["main"]
        qt.check("no-respawn-after-give-up",
                 not again.get("running") and len(again.get("exits", [])) == len(inst.get("exits", [])),
                 f"started again after giving up: {again}")


def attributes():
    argv = [SLEEP, "1010"]
    qt.ubus("set", {"name": "qt_attrs", "instances": {"main": {
        "command": argv, "nice": 7, "user": "nobody", "group": "nogroup",
        "limits": {"nofile": "123 456", "core": "unlimited"}}}})
    qt.wait(lambda: running_pids("qt_attrs", ["main"]), timeout=60)
    pids = running_pids("qt_attrs", ["main"], poll=False)
    if not qt.check("attributes-instance-running", pids,
                    f"qt_attrs not running: {qt.service_list('qt_attrs', verbose=True)}"):
        return
    pid = pids["main"]
    lim = qt.limits(pid)
    qt.check("limits-nofile", lim.get("Max open files") == ("123", "456"),
             f"Max open files {lim.get('Max open files')}")
    qt.check("limits-core-unlimited", lim.get("Max core file size") == ("unlimited", "unlimited"),
             f"Max core file size {lim.get('Max core file size')}")
    nice = int(qt.stat_fields(pid)[16])  # field 19 of /proc/PID/stat
    qt.check("nice", nice == 7, f"nice {nice}")
    st = qt.status(pid)
    qt.check("user-nobody", st["Uid"] == ["65534"] * 4, f"Uid {st['Uid']}")
    qt.check("group-nogroup", st["Gid"] == ["65534"] * 4, f"Gid {st['Gid']}")
    qt.check("no-root-supplementary-group", "0" not in st.get("Groups", []),
             f"Groups {st.get('Groups')}")


def syslog_lines():
    script = "echo qt-out-marker; echo qt-err-marker >&2; exec /bin/sleep 1020"
    qt.ubus("set", {"name": "qt_log", "instances": {"main": {
        "command": ["/bin/sh", "-c", script], "stdout": True, "stderr": True}}})
    pids = qt.wait(lambda: running_pids("qt_log", ["main"]), timeout=120)
    if not qt.check("logging-instance-running", pids, "qt_log not running"):
        return
    ident = f"sh[{pids['main']}]:"

    def logged(marker, priority):
        return [ln for ln in qt.syslog_lines()
                if marker in ln and ident in ln and f"daemon.{priority}" in ln]

    out = qt.wait(lambda: logged("qt-out-marker", "info"), timeout=60)
    qt.check("stdout-in-syslog", out,
             f"no 'daemon.info {ident} qt-out-marker' line; log has "
             f"{[ln for ln in qt.syslog_lines() if 'qt-' in ln]}")
    err = qt.wait(lambda: logged("qt-err-marker", "err"), timeout=60)
    qt.check("stderr-in-syslog", err, f"no 'daemon.err {ident} qt-err-marker' line")


def stop_leaves_nothing(pids):
    if not pids:
        qt.check("stop-leaves-no-process", False, "qt_multi never ran")
        return
    qt.ubus("delete", {"name": "qt_multi"})
    gone = qt.wait(lambda: not any(qt.state(p) for p in pids.values()), timeout=60)
    left = {p: qt.state(p) for p in pids.values() if qt.state(p)}
    qt.check("stop-leaves-no-process", gone, f"left behind (pid: state): {left}")
    qt.check("stopped-service-not-listed", "qt_multi" not in qt.service_list(),
             "qt_multi still listed after delete")


def crash_state():
    """The crash-survival files a killed daemon leaves (for reading a failure)."""
    found = {}
    for path in ("/var/run/pyprocd/state.json", "/var/run/pyprocd/state.json.journal"):
        try:
            with open(path, errors="replace") as f:
                found[path] = f.read()[-3000:]
        except OSError as e:
            found[path] = f"({e.strerror})"
    return found


def daemon_kill_and_readopt():
    names = ["a", "b", "c"]
    qt.ubus("set", {"name": "qt_survive", "instances": {
        n: {"command": [SLEEP, f"300{i}"], "respawn": ["1", "0", "5"]}
        for i, n in enumerate(names)}})
    before_all = qt.wait(lambda: running_pids("qt_survive", names), timeout=120)
    if not before_all:
        qt.check("readopt-every-instance", False, "qt_survive never ran")
        return
    # The daemon writes its snapshot a while after a change (at least ten
    # times its last write: seconds on an emulated CPU) and journals only
    # spawns and exits; a crash before the snapshot names qt_survive undoes
    # that `set`. Here the crash comes after it.
    on_disk = qt.wait(lambda: "qt_survive" in crash_state()["/var/run/pyprocd/state.json"],
                      timeout=120)
    qt.check("set-reaches-state-file", on_disk, "qt_survive never written to state.json")
    listing = qt.service_list()
    before = {(s, n): i["pid"] for s, v in listing.items()
              for n, i in v.get("instances", {}).items() if i.get("running")}
    old_daemon = qt.daemon_pid()
    os.kill(old_daemon, signal.SIGKILL)
    qt.wait(lambda: not qt.alive(old_daemon), timeout=30)
    qt.check("instances-outlive-daemon", all(qt.alive(p) for p in before.values()),
             "an instance died with the daemon")
    qt.reconnect()
    left_behind = crash_state()
    started = subprocess.run(["/qemu/daemon-start", "after-sigkill"], check=False)
    if not qt.check("daemon-restarts", started.returncode == 0,
                    f"daemon-start exited {started.returncode}"):
        return
    after_listing = qt.service_list()
    after = {(s, n): i.get("pid") for s, v in after_listing.items()
             for n, i in v.get("instances", {}).items() if i.get("running")}
    if not qt.check("readopt-every-instance", after == before,
                    f"before {sorted(before.items())} after {sorted(after.items())}"):
        qt.note(f"what the killed daemon left for its successor: {left_behind}")
    # Still supervised: a re-adopted instance that dies is respawned.
    victim = before[("qt_survive", "a")]
    if not qt.check("readopted-instance-alive", qt.alive(victim), f"pid {victim} is gone"):
        return
    os.kill(victim, signal.SIGKILL)
    new = qt.wait(lambda: [p for p in qt.pids_running([SLEEP, "3000"]) if p != victim],
                  timeout=60)
    qt.check("readopted-instance-respawns", new, "no respawn after re-adoption")
    qt.check("no-zombie-after-readopt", qt.state(victim) is None,
             f"killed re-adopted pid {victim} is in state {qt.state(victim)}")


def main():
    pids = start_several()
    gap = respawn_after_kill("qt_respawn", 2)
    if gap is not None:
        # 10 ms clock ticks on both ends
        qt.check("respawn-waits-configured-delay", gap >= 2.0 - 0.02, f"respawned after {gap:.2f} s")
        qt.figure("respawn-gap-delay-2s", f"{gap:.3f}", "s")
    gap0 = respawn_after_kill("qt_respawn0", 0)
    if gap0 is not None:
        qt.figure("respawn-gap-delay-0", f"{gap0:.3f}", "s")
    crash_loop_gives_up()
    attributes()
    syslog_lines()
    stop_leaves_nothing(pids)
    daemon_kill_and_readopt()
    for name in ("qt_respawn", "qt_respawn0", "qt_crash", "qt_attrs", "qt_log", "qt_survive"):
        try:
            qt.ubus("delete", {"name": name})
        except qt.UbusError as e:  # e.g. not re-adopted: already reported
            qt.note(f"cleanup: {e}")
    qt.finish()


if __name__ == "__main__":
    main()
