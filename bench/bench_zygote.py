"""Warm (zygote) against cold starts of a Python service, through the real daemon.

run(quick) -> dict, for a service that imports json, socket and asyncio and
prints one line:
  cold_ms / warm_ms:   `service set` -> its first output line at the log socket
                       (median of interleaved repetitions; the zygote was warmed
                       by an earlier instance of the same identity)
  warm_over_cold:      warm_ms / cold_ms
  cold_pss_kb / warm_pss_kb: PSS of 10 such services started cold, and of 10
                       started warm plus their zygote and any child of it still
                       there (each counted once)
  pss_warm_over_cold:  warm_pss_kb / cold_pss_kb
  cold_private_kb / warm_private_kb: median Private_Dirty of one of those services
                       (what a warm one has copied of the zygote's pages, or made)
The daemon runs as on a router: its own bus, a child subreaper, root if we are.
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench.measure import wait_for
from bench.peers.procfs import total_usage

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
SERVICE = ("import json, socket, asyncio, sys, time\n"
           "print('up', sys.argv[1], flush=True)\n"
           "time.sleep(100000)\n")
PRELOAD = ["json", "socket", "asyncio"]
DEADLINE = 120.0


class Stack:
    def __init__(self, tmp):
        from pyprocd.bus.client import BlockingUbus

        self.tmp = tmp
        self.sock = os.path.join(tmp, "ubus.sock")
        self.log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.log.bind(os.path.join(tmp, "log.sock"))
        self.log.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.lines = []
        env = dict(os.environ, PYTHONPATH=SRC)
        os.mkdir(os.path.join(tmp, "config"))
        self.procs = [subprocess.Popen([sys.executable, "-m", "pyprocd", "bus", "-s", self.sock],
                                       env=env, stderr=subprocess.DEVNULL)]
        wait_for(lambda: os.path.exists(self.sock), DEADLINE)
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "pyprocd", "-s", self.sock, "--syslog",
             os.path.join(tmp, "log.sock"), "--state-file", os.path.join(tmp, "state.json"),
             "--confdir", os.path.join(tmp, "config"), "--initd-dir", tmp], env=env,
            stderr=subprocess.DEVNULL))
        self.bus = BlockingUbus(self.sock, timeout=60)
        wait_for(lambda: self.bus.lookup("service")[1], DEADLINE)
        self.script = os.path.join(tmp, "service.py")
        with open(self.script, "w") as f:
            f.write(SERVICE)

    def set(self, name, warm, tag):
        table = {"command": [sys.executable, self.script, tag], "stdout": True}
        if warm:
            table["zygote"] = PRELOAD
        status, _ = self.bus.call("service", "set", {"name": name, "instances": {"i": table}})
        assert status == 0, status

    def until_line(self, text):
        """Until a log line containing text arrives (or arrived since the last call)."""
        self.log.settimeout(DEADLINE)
        while not any(text in line for line in self.lines):
            self.lines.append(self.log.recv(65536).decode(errors="replace"))
        self.lines = [line for line in self.lines if text not in line]

    def pids(self, names):
        _, replies = self.bus.call("service", "list", {})
        return [replies[0][n]["instances"]["i"]["pid"] for n in names]

    def delete(self, name):
        self.bus.call("service", "delete", {"name": name})

    def close(self):
        self.bus.close()
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()


def timed_start(stack, name, warm, tag):
    t0 = time.perf_counter()
    stack.set(name, warm, tag)
    stack.until_line(f"up {tag}")
    elapsed = (time.perf_counter() - t0) * 1000
    stack.delete(name)
    return elapsed


def children(pid):
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def zygote_pids(daemon_pid):
    """The daemon's children that are the zygote or forks of it (warm services)."""
    out = []
    for pid in children(daemon_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[1:3] == [b"-m", b"pyprocd.process.zygote"]:
                    out.append(pid)
        except (OSError, IndexError):
            continue
    return out


def private_dirty_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    return 0


def run(quick):
    reps = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="pyprocd-bench-zygote-") as tmp:
        stack = Stack(tmp)
        try:
            # the first start of an identity is cold while its zygote warms up
            stack.set("warmup", True, "warmup")
            stack.until_line("up warmup")
            stack.until_line("] ready (pid")  # the daemon: zygote ... [json ...] ready (pid N)
            cold, warm = [], []
            for n in range(reps):
                cold.append(timed_start(stack, f"cold{n}", False, f"c{n}"))
                warm.append(timed_start(stack, f"warm{n}", True, f"w{n}"))
            cold_names = [f"pc{n}" for n in range(10)]
            warm_names = [f"pw{n}" for n in range(10)]
            for names, is_warm in ((cold_names, False), (warm_names, True)):
                for name in names:
                    stack.set(name, is_warm, name)
                    stack.until_line(f"up {name}")
            time.sleep(1)  # let the page cache and COW settle equally for both
            cold_pids, warm_pids = stack.pids(cold_names), stack.pids(warm_names)
            zygotes = [p for p in zygote_pids(stack.procs[1].pid) if p not in warm_pids]
            assert len(zygotes) == 1 and all(p in zygote_pids(stack.procs[1].pid)
                                             for p in warm_pids), "not every start was warm"
            helpers = children(zygotes[0])
            cold_pss = total_usage(cold_pids)["pss_kb"]
            warm_pss = total_usage(warm_pids + zygotes + helpers)["pss_kb"]
            cold_private = statistics.median(map(private_dirty_kb, cold_pids))
            warm_private = statistics.median(map(private_dirty_kb, warm_pids))
        finally:
            stack.close()
    cold_ms, warm_ms = statistics.median(cold), statistics.median(warm)
    return {"reps": reps, "cold_ms": round(cold_ms, 1), "warm_ms": round(warm_ms, 1),
            "warm_over_cold": round(warm_ms / cold_ms, 3), "cold_pss_kb": cold_pss,
            "warm_pss_kb": warm_pss, "pss_warm_over_cold": round(warm_pss / cold_pss, 3),
            "cold_private_kb": cold_private, "warm_private_kb": warm_private}


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
