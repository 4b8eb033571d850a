"""Peer comparison: the same services under each supervisor, interleaved repetitions.

One repetition runs every scenario for every peer (A B C D, A B C D, ...), so
slow drifts of a shared machine hit all peers alike.  Scenarios:
  start    launch with N sleeping services until all N run;
  steady   M services: idle window (CPU, wake-ups, RSS/PSS of the supervisor
           side), then SIGKILL all M and time until all M run again;
  respawn  one program that exits at once, restarted at each supervisor's
           smallest delay: time from one run's exit to the next run's start.
"""

import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass

from . import guard, procfs, stats
from .base import Service, Unavailable
from .circus import Circus
from .install import ensure_installed
from .pyprocd import Pyprocd
from .supervisord import Supervisord
from .svdir import S6, Runit

PEERS = [Pyprocd, Supervisord, Circus, Runit, S6]
PEER_NAMES = [p.name for p in PEERS]
SUBJECT = "pyprocd"  # ratios are SUBJECT / peer
FAIL_ENV = "PYPROCD_BENCH_FAIL"  # test hook: make a scenario fail once services run

# (key, label, unit); every metric: lower is better
METRICS = [
    ("start_s", "start {services} services", "s"),
    ("respawn_ms", "respawn: exit -> next start", "ms"),
    ("killall_s", "SIGKILL {kill}: all back", "s"),
    ("idle_cpu_ms", "idle CPU, {idle:g} s, {kill} svc", "ms"),
    ("idle_wakeups", "idle wake-ups, {idle:g} s", ""),
    ("rss_kb", "RSS supervisor side", "kB"),
    ("pss_kb", "PSS supervisor side", "kB"),
    ("supervisor_procs", "supervisor processes", ""),
]


@dataclass
class Config:
    services: int = 200  # start scenario
    kill: int = 100  # steady scenario: idle and kill-all
    idle: float = 10.0  # seconds of idle measurement
    reps: int = 5
    respawns: int = 5  # respawn intervals per repetition
    settle: float = 1.0  # after all run, before the idle window opens
    install: bool = True
    tmpdir: str | None = None
    keep: bool = False
    circus_check_delay: float = Circus.check_delay

    @classmethod
    def quick(cls):
        return cls(services=50, kill=30, idle=3.0, reps=3, respawns=3, settle=0.5)


EXIT_NOW = """#!/bin/bash
# Benchmark service that exits at once; stamps its start and its end.
echo "S $EPOCHREALTIME" >> {log}
echo "E $EPOCHREALTIME" >> {log}
"""


class Workspace:
    """A private temp dir; its name is the marker found on every process we start."""

    def __init__(self, base=None):
        self.marker = f"pyprocd-bench-{os.getpid()}-{secrets.token_hex(4)}"
        self.dir = os.path.join(base or "/tmp", self.marker)
        os.makedirs(os.path.join(self.dir, "bin"))
        # Services run as <dir>/bin/sleep: the path names the run, the binary is sleep(1).
        self.sleep = os.path.join(self.dir, "bin", "sleep")
        os.symlink(shutil.which("sleep") or "/bin/sleep", self.sleep)
        self.count = 0

    def new_dir(self, *parts):
        self.count += 1
        path = os.path.join(self.dir, f"{self.count:03d}-" + "-".join(parts))
        os.makedirs(path)
        return path

    def sleep_services(self, n):
        # distinct arguments give each service its own, checkable command line
        return [Service(f"svc{i}", (self.sleep, str(100000 + i))) for i in range(n)]

    def cleanup(self, keep=False):
        guard.kill_all(marker=self.marker, include_own=True)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_running(peer, services, timeout, exclude=frozenset()):
    """Poll /proc until every service runs with a pid not in exclude; {argv: pid}."""
    deadline = time.monotonic() + timeout
    want = len(services)
    while True:
        found = peer.running(services)
        if len(found) == want and not exclude.intersection(found.values()):
            return found
        if not peer.alive():
            raise Unavailable(f"{peer.name} exited; see {peer.workdir}")
        if time.monotonic() > deadline:
            fresh = [p for p in found.values() if p not in exclude]
            raise TimeoutError(f"{peer.name}: {len(fresh)}/{want} running after {timeout:.0f} s")
        guard.reap_zombies()
        time.sleep(0.005)


def _maybe_fail(scenario):
    if os.environ.get(FAIL_ENV) == scenario:
        raise RuntimeError(f"{FAIL_ENV}={scenario}: failing on purpose (test hook)")


def start_timeout(n):
    # generous: the machine may be shared and 10x slower than usual
    return 60.0 + 0.5 * n


def scenario_start(peer_cls, ws, cfg):
    services = ws.sleep_services(cfg.services)
    peer = peer_cls(ws.new_dir(peer_cls.name, "start"), ws.marker)
    try:
        began = time.monotonic()
        peer.start(services)
        wait_running(peer, services, start_timeout(cfg.services))
        elapsed = time.monotonic() - began
        _maybe_fail("start")
        return {"start_s": elapsed}
    finally:
        peer.stop()


def scenario_steady(peer_cls, ws, cfg):
    services = ws.sleep_services(cfg.kill)
    peer = peer_cls(ws.new_dir(peer_cls.name, "steady"), ws.marker)
    try:
        peer.start(services)
        found = wait_running(peer, services, start_timeout(cfg.kill))
        _maybe_fail("steady")
        time.sleep(cfg.settle)
        found = wait_running(peer, services, 10.0)
        out = measure_idle(peer, services, found, cfg.idle)
        killed = set(found.values())
        began = time.monotonic()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        wait_running(peer, services, start_timeout(cfg.kill), exclude=killed)
        out["killall_s"] = time.monotonic() - began
        return out
    finally:
        peer.stop()


def measure_idle(peer, services, found, seconds):
    """CPU, wake-ups and memory of the supervisor side over an idle window."""
    side = peer.supervisor_pids(found.values())
    before = {pid: procfs.usage(pid) for pid in side}
    time.sleep(seconds)
    after = {pid: procfs.usage(pid) for pid in side}
    both = [pid for pid in side if before[pid] and after[pid]]
    if len(both) != len(side) or peer.running(services) != found:
        raise RuntimeError(f"{peer.name}: processes changed during the idle window")

    def delta(key):
        return sum(after[p][key] - before[p][key] for p in both)

    return {
        "idle_cpu_ms": delta("cpu_ns") / 1e6,
        "idle_wakeups": delta("voluntary_switches"),
        "rss_kb": sum(after[p]["rss_kb"] for p in both),
        "pss_kb": sum(after[p]["pss_kb"] for p in both),
        "supervisor_procs": len(both),
    }


def scenario_respawn(peer_cls, ws, cfg):
    workdir = ws.new_dir(peer_cls.name, "respawn")
    log = os.path.join(workdir, "respawn.log")
    program = os.path.join(workdir, "exit-now")
    with open(program, "w") as f:
        f.write(EXIT_NOW.format(log=log))
    os.chmod(program, 0o755)
    peer = peer_cls(os.path.join(workdir, "sup"), ws.marker)
    try:
        peer.start([Service("flap", (program,))])
        gaps = wait_respawns(peer, log, cfg.respawns, timeout=30.0 + 3.0 * cfg.respawns)
        _maybe_fail("respawn")
        return {"respawn_ms": stats.summarize(gaps)["median"] * 1000}
    finally:
        peer.stop()


def read_stamps(log):
    try:
        with open(log) as f:
            # the last piece is "" or a line still being written: skip it
            lines = f.read().split("\n")[:-1]
    except FileNotFoundError:
        return []
    stamps = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("S", "E"):
            stamps.append((parts[0], float(parts[1].replace(",", "."))))
    return stamps


def respawn_gaps(stamps):
    """Seconds from each run's end stamp to the following run's start stamp."""
    gaps, last_end = [], None
    for kind, when in stamps:
        if kind == "E":
            last_end = when
        elif last_end is not None:
            gaps.append(when - last_end)
            last_end = None
    return gaps


def wait_respawns(peer, log, count, timeout):
    deadline = time.monotonic() + timeout
    while True:
        gaps = respawn_gaps(read_stamps(log))
        if len(gaps) >= count:
            return gaps[:count]
        if not peer.alive():
            raise Unavailable(f"{peer.name} exited; see {peer.workdir}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{peer.name}: {len(gaps)}/{count} respawns in {timeout:.0f} s")
        guard.reap_zombies()
        time.sleep(0.02)


SCENARIOS = [("start", scenario_start), ("steady", scenario_steady),
             ("respawn", scenario_respawn)]


def select_peers(names, cfg, say):
    """Peer classes to run (all when names is empty), and {name: reason} for the rest."""
    chosen = [p for p in PEERS if not names or p.name in names]
    if cfg.install:
        ensure_installed([p for p in chosen if p.missing()], say)
    usable, unavailable = [], {}
    for peer_cls in chosen:
        reason = peer_cls.missing()
        if reason:
            unavailable[peer_cls.name] = reason
            say(f"peers: {peer_cls.name} unavailable: {reason}")
        else:
            usable.append(peer_cls)
    return usable, unavailable


def run(cfg, names=(), say=None):
    """Run the comparison; returns the JSON-able result (see report.py for the table)."""
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    Circus.check_delay = cfg.circus_check_delay
    usable, unavailable = select_peers(set(names), cfg, say)
    samples = {p.name: {key: [] for key, _, _ in METRICS} for p in usable}
    errors = {p.name: [] for p in usable}
    ws = Workspace(cfg.tmpdir)
    try:
        for rep in range(cfg.reps):
            for peer_cls in usable:
                for scenario, measure in SCENARIOS:
                    values = run_one(peer_cls, scenario, measure, ws, cfg, rep, errors, say)
                    for key, value in values.items():
                        samples[peer_cls.name][key].append(value)
    finally:
        previous = guard.ignore_interrupts()
        try:
            ws.cleanup(keep=cfg.keep)
        finally:
            guard.restore_handlers(previous)
    return build_result(cfg, usable, unavailable, samples, errors)


def run_one(peer_cls, scenario, measure, ws, cfg, rep, errors, say):
    """One scenario for one peer; a failure is recorded and the run goes on."""
    try:
        values = measure(peer_cls, ws, cfg)
    except Exception as exc:  # noqa: BLE001 - any failure of a peer is data, not a crash
        errors[peer_cls.name].append(f"rep {rep + 1} {scenario}: {type(exc).__name__}: {exc}")
        say(f"peers: rep {rep + 1}/{cfg.reps} {peer_cls.name} {scenario}: FAILED {exc}")
        return {key: None for key in SCENARIO_KEYS[scenario]}
    shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    say(f"peers: rep {rep + 1}/{cfg.reps} {peer_cls.name} {scenario}: {shown}")
    return values


SCENARIO_KEYS = {
    "start": ["start_s"],
    "steady": ["idle_cpu_ms", "idle_wakeups", "rss_kb", "pss_kb", "supervisor_procs",
               "killall_s"],
    "respawn": ["respawn_ms"],
}


def build_result(cfg, usable, unavailable, samples, errors):
    peers = {}
    for peer_cls in usable:
        name = peer_cls.name
        peers[name] = {
            "available": True,
            "version": peer_cls.version(),
            "metrics": {key: stats.summarize(series) for key, series in samples[name].items()},
            "errors": errors[name],
        }
    for name, reason in unavailable.items():
        peers[name] = {"available": False, "reason": reason}
    ratios = {}
    subject = peers.get(SUBJECT, {})
    if subject.get("available"):
        for name, peer in peers.items():
            if name != SUBJECT and peer.get("available"):
                ratios[name] = {key: stats.ratio(subject["metrics"][key], peer["metrics"][key])
                                for key, _, _ in METRICS}
    return {"config": asdict(cfg), "peers": peers, "ratios": ratios}


def machine():
    """What the figures were measured on."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }

