"""What every supervisor adapter offers the harness.

An adapter is given a private work dir and a list of services, each a name
and an argv; it writes the supervisor's own configuration, launches it,
and stops it.  Which processes run is read from /proc (procfs.matching),
never from the supervisor, so every peer is judged by the same rule.
"""

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from . import guard, procfs

MARKER_ENV = "PYPROCD_BENCH_MARKER"


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple


class Unavailable(Exception):
    """The supervisor is not installed or cannot run here."""


class Peer:
    name = "?"

    def __init__(self, workdir, marker):
        self.workdir = workdir
        self.marker = marker
        self.procs = []  # Popen objects of the supervisor processes we launched
        os.makedirs(workdir, exist_ok=True)

    # -- to override -------------------------------------------------------
    @classmethod
    def missing(cls):
        """None when usable here, else why not (a short reason)."""
        return

    @classmethod
    def version(cls):
        return "?"

    def start(self, services):
        """Write the config for services and launch the supervisor; don't wait."""
        raise NotImplementedError

    def request_stop(self):
        """Ask the supervisor, its own way, to stop every service and exit."""
        for proc in self.procs:
            self.signal(proc, 15)

    # -- shared ------------------------------------------------------------
    def env(self):
        env = dict(os.environ)
        env[MARKER_ENV] = self.marker
        return env

    def launch(self, argv, log_name, **kwargs):
        """Start one supervisor-side process in a session of its own."""
        with open(os.path.join(self.workdir, log_name), "ab") as log:
            proc = subprocess.Popen(
                argv, cwd=kwargs.pop("cwd", self.workdir), env=kwargs.pop("env", self.env()),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    @staticmethod
    def signal(proc, signum):
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:
            pass

    def roots(self):
        return [proc.pid for proc in self.procs]

    def running(self, services):
        """{argv: pid} of services whose process runs now (per /proc)."""
        return procfs.matching(self.roots(), {s.argv for s in services})

    def supervisor_pids(self, service_pids):
        """Every process of the supervisor side: its tree minus the services."""
        services = set(service_pids)
        return [pid for pid in procfs.descendants(self.roots()) if pid not in services]

    def alive(self):
        return any(proc.poll() is None for proc in self.procs)

    def stop(self, grace=5.0):
        """Graceful stop, then SIGKILL whatever of the tree is left."""
        tree = procfs.descendants(self.roots())
        try:
            self.request_stop()
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                guard.reap_zombies()
                if not [p for p in tree if not procfs.is_zombie(p)]:
                    break
                time.sleep(0.02)
        finally:
            guard.kill_all(roots=tree + self.roots(), marker=self.marker)
            for proc in self.procs:
                try:
                    proc.wait(timeout=5)
                except (subprocess.TimeoutExpired, ChildProcessError):
                    pass


def have_commands(*names):
    missing = [n for n in names if shutil.which(n) is None]
    return f"not installed ({', '.join(missing)} not on PATH)" if missing else None


def have_module(module):
    import importlib.util

    return None if importlib.util.find_spec(module) else f"python module {module} not installed"


def python():
    return sys.executable
