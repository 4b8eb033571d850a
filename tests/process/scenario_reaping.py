"""Runs in its own process (it becomes a subreaper, which must not leak into pytest):
a ServiceManager with real children and forker.py services. Prints a JSON report.

    python3 scenario_reaping.py TMPDIR
"""

import json
import os
import signal
import sys
from pathlib import Path

from pyprocd.process import harden
from tests.core.harness import Supervisor

FORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forker.py")
PYTHON = os.path.realpath(sys.executable)


def state_of(pid):
    """'gone', or the /proc state letter (Z = zombie), and the parent pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "gone", None
    fields = stat[stat.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1])


def wait_pidfile(sup, path):
    sup.wait(lambda: harden.read_pidfile(path) is not None, 60)
    return harden.read_pidfile(path)


def run_stay(sup, tmp, name, group_kill):
    """Main stays, grandchild orphaned to us; then stop the service."""
    pidfile = str(tmp / f"{name}.pid")
    sup.call("set", {"name": name, "instances": {"i1": {
        "command": [PYTHON, "-I", FORKER, "stay", pidfile], "group_kill": group_kill}}})
    grand = wait_pidfile(sup, pidfile)
    sup.wait(lambda: state_of(grand)[1] == os.getpid(), 60)
    adopted = state_of(grand)[1] == os.getpid()
    sup.call("delete", {"name": name})
    sup.wait(lambda: name not in sup.mgr.services, 60)
    sup.wait(lambda: state_of(grand)[0] == "gone", 10 if group_kill else 1)
    after_stop = state_of(grand)[0]
    if after_stop != "gone":          # without group kill it survives: clean it up
        os.kill(grand, signal.SIGKILL)
        sup.wait(lambda: state_of(grand)[0] == "gone", 60)
    return {"adopted": adopted, "after_stop": after_stop, "grandchild": grand,
            "final": state_of(grand)[0]}


def run_daemonize(sup, tmp):
    """Classic daemon: main exits 0, the pidfile names the new main pid."""
    pidfile = str(tmp / "daemon.pid")
    sup.call("set", {"name": "daemon", "instances": {"i1": {
        "command": [PYTHON, "-I", FORKER, "daemonize", pidfile]}}})
    inst = sup.inst("daemon", "i1")
    sup.wait(lambda: inst.running, 60)
    main_pid = inst.pid
    sup.wait(lambda: inst.exits, 60)
    found = []
    harden.follow_pidfile_async(sup.loop, pidfile, main_pid, found.append, timeout=60,
                                parent=os.getpid())
    sup.wait(lambda: found, 90)
    new_pid = found[0] if found else None
    stale = harden.pidfile_candidate(pidfile, new_pid)     # names itself: no new pid
    os.kill(new_pid, signal.SIGTERM)
    sup.wait(lambda: state_of(new_pid)[0] == "gone", 60)
    return {"main": main_pid, "new": new_pid, "new_parent_was_us": new_pid is not None,
            "stale": stale, "final": state_of(new_pid)[0], "main_exit": inst.exits[-1].exit_code}


def main(tmpdir):
    tmp = Path(tmpdir)
    harden.set_child_subreaper()
    sup = Supervisor(tmp)
    orphans = []
    sup.loop.on_orphan_reaped = lambda pid, status: orphans.append(pid)
    report = {}
    try:
        report["group_kill"] = run_stay(sup, tmp, "grouped", True)
        report["no_group_kill"] = run_stay(sup, tmp, "plain", False)
        report["daemonize"] = run_daemonize(sup, tmp)
        sup.wait(lambda: len(orphans) >= 3, 30)
    finally:
        sup.close()
    report["orphans_reaped"] = orphans
    children = [p for p in os.listdir("/proc") if p.isdigit() and state_of(int(p))[1] == os.getpid()]
    report["children_left"] = [int(p) for p in children]
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
