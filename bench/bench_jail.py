"""Cost of the built-in jail, measured within one run so the ratio is comparable.

run(quick) -> dict with:
  start:  seconds from `service set` (in process: manager + spawner on one loop) to
          the program having exec'd, /bin/sleep unjailed vs jailed (procfs, sysfs,
          log, hostname: a typical procd jail), interleaved; the ratio jailed/plain.
  memory: with 20 jailed instances running, the supervisors' proportional set size
          (Pss, kB; each is a forked copy of the daemon, sharing its pages) and their
          private dirty memory, summed and per instance.
Root only (a jail needs root); otherwise {"skipped": reason}.
"""

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from bench.peers.stats import ratio, summarize
from pyprocd.api.service import call_service
from pyprocd.core.manager import ServiceManager
from pyprocd.loop import Loop
from pyprocd.process.host import Host
from pyprocd.process.logsink import DaemonLog, SyslogSink

JAIL = {"procfs": True, "sysfs": True, "log": True, "hostname": "bench"}


class _Quiet:
    def send(self, priority, ident, message):
        pass


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _execd(pid):
    """The program (sleep) runs: not the daemon's copy that will exec it."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "sleep"
    except OSError:
        return False


def _program_running(mgr, name, jailed):
    inst = mgr.services[name].instances["a"]
    if not inst.running:
        return False
    if not jailed:
        return _execd(inst.pid)
    return any(_execd(kid) for kid in _children(inst.pid))


class _Bench:
    def __init__(self, folder):
        import socket

        self.log_path = os.path.join(folder, "log.sock")
        self.reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.reader.bind(self.log_path)
        self.loop = Loop()
        self.sink = SyslogSink(self.log_path, loop=self.loop)
        log = DaemonLog(keep=100, sink=None)
        log.sink = _Quiet()
        self.mgr = ServiceManager(self.loop, Host(self.loop, self.sink, log=log), log=log)

    def start(self, name, jailed, instances=1):
        spec = {"command": ["/bin/sleep", "1000"], "term_timeout": 1}
        if jailed:
            spec["jail"] = dict(JAIL)
        started = time.perf_counter()
        call_service(self.mgr, "set", {"name": name, "instances": {"a": spec}})
        if not self.loop.run_until(lambda: _program_running(self.mgr, name, jailed), 30):
            raise RuntimeError(f"{name} did not start: {self.mgr.services[name].instances['a'].spawn_error}")
        return time.perf_counter() - started

    def stop(self, name):
        call_service(self.mgr, "delete", {"name": name})
        self.loop.run_until(lambda: name not in self.mgr.services, 30)

    def close(self):
        done = []
        self.mgr.stop_all(lambda: done.append(True))
        self.loop.run_until(lambda: done, 60)
        self.loop.close()
        self.sink.close()
        self.reader.close()


def _memory(pids):
    pss = dirty = 0
    for pid in pids:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Private_Dirty:"):
                    dirty += int(line.split()[1])
    return pss, dirty


def run(quick=False):
    if os.geteuid() != 0:
        return {"skipped": "a jail needs root"}
    rounds = 5 if quick else 30
    with tempfile.TemporaryDirectory() as folder:
        bench = _Bench(folder)
        try:
            plain, jailed = [], []
            for i in range(rounds):          # interleaved: drift hits both equally
                plain.append(bench.start(f"plain{i}", False))
                bench.stop(f"plain{i}")
                jailed.append(bench.start(f"jailed{i}", True))
                bench.stop(f"jailed{i}")
            count = 5 if quick else 20
            for i in range(count):
                bench.start(f"mem{i}", True)
            supervisors = [bench.mgr.services[f"mem{i}"].instances["a"].pid for i in range(count)]
            pss, dirty = _memory(supervisors)
        finally:
            bench.close()
    return {
        "start": {"plain_s": summarize(plain), "jailed_s": summarize(jailed),
                  "ratio_jailed_vs_plain": ratio(summarize(jailed), summarize(plain))},
        "memory": {"instances": count, "supervisors_pss_kb": pss,
                   "supervisors_private_dirty_kb": dirty,
                   "per_instance_pss_kb": pss // count,
                   "per_instance_private_dirty_kb": dirty // count},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
