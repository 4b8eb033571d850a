"""`make soak` (python3 -m bench.soak [--cycles N] [--seed S]): a bounded soak of the daemon.

A bus and the daemon in a temp dir; then N cycles, each one of: `set` a service
(two instances, one of them crashing now and then), `delete` one, `signal` a
random instance with a random signal over ubus, kill a random instance's
process directly, or a `watchdog` call. Every few cycles `list` is checked
against what was submitted: a service that was set and not deleted must be
listed with its instances. At the end every service is deleted and every pid
seen must be gone. Prints the counts; exits 1 if the daemon ever stopped or an
instance was lost or left running.
"""

import os
import random
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from pyprocd.bus.client import BlockingUbus

SERVICES = 8
# signals an instance may be sent over ubus or directly: the daemon must take each in its stride
SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM,
           signal.SIGKILL, signal.SIGRTMIN + 1, signal.SIGALRM)
CHECK_EVERY = 50
DEADLINE = 60.0


def service_message(name, rng):
    crash_after = rng.choice(("0.05", "0.3", "5"))
    return {"name": name, "instances": {
        "steady": {"command": ["/bin/sleep", "1000"], "respawn": ["3600", "0", "0"],
                   "term_timeout": 1},
        "crashy": {"command": ["/bin/sh", "-c", f"sleep {crash_after}; exit 3"],
                   "respawn": ["3600", "0", "0"], "term_timeout": 1}}}


def wait_for(condition, timeout=DEADLINE, step=0.02):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


class Soak:
    def __init__(self, tmp, rng):
        self.tmp = tmp
        self.rng = rng
        self.socket = os.path.join(tmp, "ubus.sock")
        self.procs = []
        self.expected = {}  # service name -> set of instance names
        self.pids_seen = set()
        self.counts = dict.fromkeys(("set", "delete", "ubus_signal", "kill", "watchdog",
                                     "checks", "lost", "bad_status"), 0)

    def start(self):
        env = dict(os.environ, PYTHONPATH=SRC)
        with open(os.path.join(self.tmp, "bus.err"), "wb") as err:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "pyprocd", "bus", "-s", self.socket], env=env, stderr=err))
        if not wait_for(lambda: os.path.exists(self.socket)):
            raise SystemExit("soak: the bus did not start")
        config = os.path.join(self.tmp, "config")
        os.mkdir(config)
        with open(os.path.join(self.tmp, "daemon.err"), "wb") as err:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "pyprocd", "-s", self.socket,
                 "--syslog", os.path.join(self.tmp, "log.sock"),
                 "--state-file", os.path.join(self.tmp, "state.json"), "--confdir", config,
                 "--initd-dir", config],
                env=env, stderr=err)
        self.procs.append(self.daemon)
        self.bus = BlockingUbus(self.socket, timeout=30)
        if not wait_for(lambda: self.bus.lookup("service")[1]):
            raise SystemExit("soak: the daemon did not register `service`")

    def call(self, method, msg):
        status, replies = self.bus.call("service", method, msg)
        return status, (replies[0] if replies else None)

    def step(self):
        action = self.rng.choices(("set", "delete", "ubus_signal", "kill", "watchdog"),
                                  weights=(4, 2, 3, 2, 1))[0]
        name = f"soak{self.rng.randrange(SERVICES)}"
        if action == "set":
            status, _ = self.call("set", service_message(name, self.rng))
            if status == 0:
                self.expected[name] = {"steady", "crashy"}
        elif action == "delete":
            status, _ = self.call("delete", {"name": name})
            if status == 0:
                self.expected.pop(name, None)
            elif name not in self.expected and status == 4:  # NOT_FOUND: right answer
                status = 0
        elif action == "ubus_signal":
            status, _ = self.call("signal", {"name": name, "signal": self.rng.choice(SIGNALS)})
            if status == 4:  # nothing running there right now
                status = 0
        elif action == "watchdog":
            status, _ = self.call("watchdog", {"name": name, "instance": "steady",
                                               "mode": 1, "timeout": 0})
            if status == 4:
                status = 0
        else:
            status = 0
            pid = self.some_pid()
            if pid:
                try:
                    os.kill(pid, self.rng.choice(SIGNALS))
                except ProcessLookupError:
                    pass
        self.counts[action] += 1
        if status != 0:
            self.counts["bad_status"] += 1

    def listed(self):
        status, reply = self.call("list", {})
        if status != 0:
            raise SystemExit(f"soak: list failed with status {status}")
        for svc in reply.values():
            for inst in svc.get("instances", {}).values():
                if inst.get("pid"):
                    self.pids_seen.add(inst["pid"])
        return reply

    def some_pid(self):
        pids = [i["pid"] for s in self.listed().values()
                for i in s.get("instances", {}).values() if i.get("running") and i.get("pid")]
        return self.rng.choice(pids) if pids else None

    def check(self):
        self.counts["checks"] += 1
        listed = self.listed()
        for name, instances in self.expected.items():
            have = set(listed.get(name, {}).get("instances", {}))
            if have != instances:
                self.counts["lost"] += 1
                print(f"soak: {name} listed with {sorted(have)}, expected {sorted(instances)}",
                      file=sys.stderr)

    def finish(self):
        for name in list(self.expected):
            self.call("delete", {"name": name})
        self.expected.clear()
        wait_for(lambda: not self.listed())
        left = [p for p in self.pids_seen if pid_alive(p)]
        return wait_for(lambda: not [p for p in left if pid_alive(p)]) and not self.listed()

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cycles = int(argv[argv.index("--cycles") + 1]) if "--cycles" in argv else 10000
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else int(time.time())
    with tempfile.TemporaryDirectory(prefix="pyprocd-soak-") as tmp:
        soak = Soak(tmp, random.Random(seed))
        try:
            soak.start()
            started = time.monotonic()
            for n in range(1, cycles + 1):
                soak.step()
                if soak.daemon.poll() is not None:
                    break
                if n % CHECK_EVERY == 0:
                    soak.check()
            daemon_alive = soak.daemon.poll() is None
            clean = daemon_alive and soak.finish()
            elapsed = time.monotonic() - started
        finally:
            if soak.procs:
                soak.stop()
                if hasattr(soak, "bus"):
                    soak.bus.close()
        code = soak.daemon.returncode
        counts = " ".join(f"{k}={v}" for k, v in soak.counts.items())
        print(f"soak: seed {seed}, {n} cycles in {elapsed:.1f} s: {counts}; daemon "
              f"{'alive throughout' if daemon_alive else f'STOPPED (exit {code})'}; "
              f"{'nothing left running' if clean else 'INSTANCES LEFT OR LOST'}")
        if not daemon_alive:
            with open(os.path.join(tmp, "daemon.err"), errors="replace") as f:
                print(f.read()[-4000:], file=sys.stderr)
        ok = daemon_alive and clean and soak.counts["lost"] == 0 and soak.counts["bad_status"] == 0
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
