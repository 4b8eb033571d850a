"""pyprocd: its own ubus bus plus the supervisor, services submitted over ubus.

Launch = bus, daemon, then one `ubus call service set` carrying every service
as an instance of one service (an init script's way).  The call is retried
until the daemon has registered `service` on the bus; all of it counts in
the start time, as the other peers' config parsing does.
"""

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import time

from .base import Peer, Unavailable, have_module, python

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   "src")
# threshold 3600 s, restart delay 0 s, unlimited retries: restart at once, always
RESPAWN = ["3600", "0", "0"]
# pyprocd runs from compiled bytecode, as an installed package (and the pip-installed
# Python peers) do: compiling at every start would count the compiler's memory.
# The bytecode lives in a temp dir of this run, removed when the run ends.
_compiled = []


def pycache():
    if not _compiled:
        folder = tempfile.mkdtemp(prefix="pyprocd-bench-pycache-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _compiled.append(folder)
    return _compiled[0]


def compile_once():
    if len(_compiled) < 2:
        env = dict(os.environ, PYTHONPYCACHEPREFIX=pycache())
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([python(), "-m", "compileall", "-q", SRC], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _compiled.append(True)  # [folder, compiled]


class Pyprocd(Peer):
    name = "pyprocd"

    @classmethod
    def missing(cls):
        for module in ("pyprocd.bus.serve", "pyprocd.bus.ubuscli", "pyprocd.daemon.main"):
            try:
                reason = have_module(module)
            except ImportError:
                reason = f"python module {module} not importable"
            if reason:
                return reason + " (daemon not written yet)"
        compile_once()  # before any timing starts
        return None

    @classmethod
    def version(cls):
        try:
            import pyprocd

            return pyprocd.__version__
        except (ImportError, AttributeError):
            return "?"

    def env(self):
        env = super().env()
        path = env.get("PYTHONPATH", "")
        if SRC not in path.split(os.pathsep):
            env["PYTHONPATH"] = SRC + (os.pathsep + path if path else "")
        compile_once()
        env["PYTHONPYCACHEPREFIX"] = pycache()
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def start(self, services):
        self.sock = os.path.join(self.workdir, "ubus.sock")
        self.bus = self.launch([python(), "-m", "pyprocd", "bus", "-s", self.sock], "bus.out")
        self.wait_for(lambda: os.path.exists(self.sock), "bus socket")
        self.daemon = self.launch(
            [python(), "-m", "pyprocd", "-s", self.sock,
             "--syslog", os.path.join(self.workdir, "syslog.sock"),
             # its own state and config: nothing of the host's is read or written
             "--state-file", os.path.join(self.workdir, "state.json"),
             "--confdir", self.workdir, "--initd-dir", self.workdir],
            "daemon.out")
        message = {"name": "bench", "instances": {
            s.name: {"command": list(s.argv), "respawn": RESPAWN} for s in services}}
        self.wait_for(lambda: self.ubus("call", "service", "set", json.dumps(message)) == 0,
                      "service set accepted")

    def ubus(self, *args):
        done = subprocess.run([python(), "-m", "pyprocd", "ubus", "-s", self.sock, *args],
                              env=self.env(), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60, check=False)
        return done.returncode

    def wait_for(self, condition, what, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not condition():
            if not self.alive() or any(p.poll() is not None for p in self.procs):
                raise Unavailable(f"pyprocd exited while waiting for {what}; see "
                                  f"{self.workdir}/*.out")
            if time.monotonic() > deadline:
                raise Unavailable(f"pyprocd: no {what} within {timeout:.0f} s")
            time.sleep(0.01)

    def request_stop(self):
        # Daemon first (it stops its services), then the bus it talks to.
        daemon, bus = getattr(self, "daemon", None), getattr(self, "bus", None)
        if daemon is not None:
            self.signal(daemon, 15)
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if bus is not None:
            self.signal(bus, 15)
