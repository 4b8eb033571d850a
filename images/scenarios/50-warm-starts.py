#!/usr/bin/python3
"""Warm (zygote) against cold starts of a Python service on the router's CPU.

A service that imports json, socket and asyncio and prints one line; the time
from `service set` to that line in syslog, cold and warm (the zygote warmed by
an earlier instance), and the PSS of a few such services each way (the warm
side with its zygote). Figures, plus checks that the warm ones really were
forked from the zygote and behave like the cold ones (running, same log line).
"""

import os
import time

import qt

DIR = "/tmp/qt-warm"
SCRIPT = f"{DIR}/service.py"
PRELOAD = ["json", "socket", "asyncio"]
SERVICES = 4


def start(name, warm):
    table = {"command": ["/usr/bin/python3", SCRIPT, name], "stdout": True}
    if warm:
        table["zygote"] = PRELOAD
    t0 = time.monotonic()
    qt.ubus("set", {"name": name, "instances": {"i": table}})
    while time.monotonic() - t0 < 300:  # a fixed, fine step: this is the figure
        if any(line.endswith(f"up {name}") for line in qt.syslog_lines()):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def pid_of(name):
    return qt.instances(qt.service_list(name, poll=True), name).get("i", {}).get("pid")


def is_warm(pid):
    return b"pyprocd.process.zygote" in b"\0".join(qt.cmdline(pid) or [])


def main():
    os.makedirs(DIR, exist_ok=True)
    with open(SCRIPT, "w") as f:
        f.write("import json, socket, asyncio, sys, time\n"
                "print('up', sys.argv[1], flush=True)\ntime.sleep(100000)\n")
    start("qt_zwarmup", True)  # the identity's first start is cold; its zygote warms up
    ready = qt.wait(lambda: any("] ready (pid" in line for line in qt.syslog_lines()), 300)
    qt.check("zygote-ready", ready, "the daemon never logged its zygote ready")
    cold = [start(f"qt_cold{n}", False) for n in range(SERVICES)]
    warm = [start(f"qt_warm{n}", True) for n in range(SERVICES)]
    qt.check("cold-starts-log-their-line", all(cold), f"cold {cold}")
    qt.check("warm-starts-log-their-line", all(warm), f"warm {warm}")
    warm_pids = [pid_of(f"qt_warm{n}") for n in range(SERVICES)]
    cold_pids = [pid_of(f"qt_cold{n}") for n in range(SERVICES)]
    qt.check("warm-starts-are-forks-of-the-zygote", all(p and is_warm(p) for p in warm_pids),
             f"warm pids {warm_pids}")
    qt.check("warm-services-are-the-daemons-children",
             all(p and int(qt.stat_fields(p)[1]) == qt.daemon_pid() for p in warm_pids),
             "a warm service's parent is not the daemon")
    if all(cold) and all(warm):
        c, w = sorted(cold)[SERVICES // 2], sorted(warm)[SERVICES // 2]
        qt.figure("python-service-start-cold", f"{c:.2f}", "s")
        qt.figure("python-service-start-zygote", f"{w:.2f}", "s")
        qt.figure("python-service-start-zygote/cold", f"{w / c:.2f}", "")
    # the zygote itself: the daemon's child with the zygote's command line, not a service
    zygote = [p for p in _children(qt.daemon_pid()) if is_warm(p) and p not in warm_pids]
    cold_pss = sum(qt.memory_kib(p)[1] or 0 for p in cold_pids if p)
    warm_pss = sum(qt.memory_kib(p)[1] or 0 for p in warm_pids + zygote if p)
    if cold_pss and warm_pss:
        qt.figure(f"pss-{SERVICES}-python-services-cold", f"{cold_pss / 1024:.1f}", "MiB")
        qt.figure(f"pss-{SERVICES}-python-services-zygote", f"{warm_pss / 1024:.1f}", "MiB")
        qt.figure("pss-zygote/cold", f"{warm_pss / cold_pss:.2f}", "")
    for name in ["qt_zwarmup", *(f"qt_cold{n}" for n in range(SERVICES)),
                 *(f"qt_warm{n}" for n in range(SERVICES))]:
        try:
            qt.ubus("delete", {"name": name})
        except qt.UbusError as e:
            qt.note(f"cleanup: {e}")
    qt.finish()


def _children(pid):
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids += [int(k) for k in f.read().split()]
    return kids


if __name__ == "__main__":
    main()
