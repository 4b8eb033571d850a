#!/usr/bin/python3
"""Figures of this guest, printed for the README's table, never asserted:
the daemon's RSS/PSS with 20 instances and the cost of `python3 -c pass`.
(The daemon's start-to-registered time comes from /qemu/daemon-start, the
respawn gap from the instance scenario.)"""

import statistics
import subprocess
import time

import qt


def main():
    names = [f"i{n:02d}" for n in range(20)]
    qt.ubus("set", {"name": "qt_twenty", "instances": {
        n: {"command": ["/bin/sleep", str(4000 + i)]} for i, n in enumerate(names)}})

    def all_running():
        found = qt.instances(qt.service_list("qt_twenty", poll=True), "qt_twenty")
        return len([i for i in found.values() if i.get("running")]) == 20

    if qt.check("twenty-instances-running", qt.wait(all_running, timeout=180),
                "not all 20 instances of qt_twenty running"):
        time.sleep(1)
        rss, pss = qt.memory_kib(qt.daemon_pid())
        qt.figure("daemon-rss-20-instances", f"{rss / 1024:.1f}", "MiB")
        if pss is not None:
            qt.figure("daemon-pss-20-instances", f"{pss / 1024:.1f}", "MiB")
    qt.ubus("delete", {"name": "qt_twenty"})

    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run(["python3", "-c", "pass"], check=True)
        runs.append(time.perf_counter() - t0)
    qt.figure("python3-c-pass-median-of-5", f"{statistics.median(runs):.3f}", "s")
    qt.finish()


if __name__ == "__main__":
    main()
