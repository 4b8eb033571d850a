#!/usr/bin/python3
"""pyprocd's short commands as an init script runs them: cold, and through
chiark-utils' prefork-interp client (Debian's chiark-utils-bin, built for
the target) talking to pyprocd's prefork server.

`pyprocd ubus call service list '{"name": ...}'` from `sh -c` in `/` (where
init scripts run), N times each way, alternating so the shared host's
changing load falls on both alike: the cold command, and
`prefork-interp -U python3 .../pyprocd/prefork/cli.py ubus call ...` (its
first call starts the server, timed on its own; the later ones are forks of
it). Checks: the same stdout, stderr and exit status both ways, for a good
call and for two failing ones; the server's socket is in the boot's
/var/run/user/0 (tmpfs); one server between calls; `--kill` stops it.
Figures: the medians and their ratio.
"""

import importlib.util
import json
import os
import shlex
import shutil
import stat
import subprocess
import time

import qt

CALLS = 7
SERVICE = "qt_prefork"
RUN_DIR = "/var/run/user/0"
CLI = importlib.util.find_spec("pyprocd.prefork.cli").origin


def cold(args):
    return "pyprocd " + shlex.join(args)


def warm(args, *options):
    return shlex.join(["prefork-interp", "-U", *options, "python3", CLI, *args])


def run(command):
    """(seconds, exit status, stdout, stderr) of `sh -c command` in /."""
    t0 = time.monotonic()
    done = subprocess.run(["/bin/sh", "-c", command], cwd="/", capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=300, check=False)
    return time.monotonic() - t0, done.returncode, done.stdout, done.stderr


def server_pids():
    """The prefork server and its forks: python3 running the prefork cli."""
    found = []
    for entry in os.listdir("/proc"):
        argv = qt.cmdline(entry) if entry.isdigit() else None
        if argv and argv[1:2] == [CLI.encode()] and qt.alive(entry):
            found.append(int(entry))
    return found


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main():
    client = shutil.which("prefork-interp")
    if not qt.check("client-installed", client, "no prefork-interp on PATH"):
        qt.finish()
    info = os.lstat(RUN_DIR) if os.path.isdir(RUN_DIR) else None
    qt.check("run-dir-private", info and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == 0,
             f"{RUN_DIR}: {info}")
    qt.call("set", {"name": SERVICE, "instances": {"i": {"command": ["/bin/sleep", "100000"]}}})
    qt.wait(lambda: qt.instances(qt.service_list(SERVICE, poll=True), SERVICE)
            .get("i", {}).get("pid"), 60)
    listing = ["ubus", "call", "service", "list", json.dumps({"name": SERVICE})]
    first = run(warm(listing))
    cold_runs, warm_runs = [], []
    for _ in range(CALLS):  # alternating: the host's changing load falls on both alike
        cold_runs.append(run(cold(listing)))
        warm_runs.append(run(warm(listing)))
    outcomes = {r[1:] for r in cold_runs + [first] + warm_runs}
    qt.check("same-output-cold-and-warm", len(outcomes) == 1, f"{len(outcomes)} different outcomes")
    status, stdout, stderr = cold_runs[0][1:]
    qt.check("list-shows-the-service", status == 0 and json.loads(stdout).get(SERVICE),
             f"exit {status} {stdout[:200]!r} {stderr[:200]!r}")
    for label, args in (("unknown-method", ["ubus", "call", "service", "no_such_method"]),
                        ("unknown-object", ["ubus", "call", "qt_no_such_object", "list"])):
        c, w = run(cold(args))[1:], run(warm(args))[1:]
        qt.check(f"{label}-same-failure-cold-and-warm", c == w and c[0] != 0,
                 f"cold {c!r}, warm {w!r}")
    sockets = [name for name in os.listdir(f"{RUN_DIR}/prefork-interp")
               if stat.S_ISSOCK(os.lstat(f"{RUN_DIR}/prefork-interp/{name}").st_mode)] \
        if os.path.isdir(f"{RUN_DIR}/prefork-interp") else []
    qt.check("server-socket-in-run-dir", sockets, f"nothing in {RUN_DIR}/prefork-interp")
    servers = server_pids()
    qt.check("one-server-between-calls", len(servers) == 1, f"server pids {servers}")
    killed = run(warm(listing, "--kill"))
    qt.check("kill-exits-0", killed[1] == 0, f"{killed[1:]!r}")
    qt.check("kill-stops-the-server", qt.wait(lambda: not server_pids(), 60),
             f"still running: {server_pids()}")
    try:
        qt.call("delete", {"name": SERVICE})
    except qt.UbusError as e:
        qt.note(f"cleanup: {e}")
    qt.note(f"calls, cold: {' '.join(f'{r[0]:.3f}' for r in cold_runs)}")
    qt.note(f"calls, prefork: {' '.join(f'{r[0]:.3f}' for r in warm_runs)}")
    c, f, w = median([r[0] for r in cold_runs]), first[0], median([r[0] for r in warm_runs])
    qt.figure(f"ubus-list-cold-median-of-{CALLS}", f"{c:.3f}", "s")
    qt.figure("ubus-list-prefork-first-call", f"{f:.3f}", "s")
    qt.figure(f"ubus-list-prefork-median-of-{CALLS}", f"{w:.3f}", "s")
    qt.figure("ubus-list-prefork/cold", f"{w / c:.3f}", "")
    qt.finish()


if __name__ == "__main__":
    main()
