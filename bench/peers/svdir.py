"""runit (runsvdir/runsv) and s6 (s6-svscan/s6-supervise): a directory per service.

Both scan a directory of service dirs, each with an executable `run`, and
start one supervisor process per service.  Neither has a restart delay to
set: both wait until a second has passed since the last start.
"""

import os
import shlex
import subprocess

from .base import Peer, have_commands


def write_service_dirs(top, services):
    os.makedirs(top, exist_ok=True)
    for s in services:
        d = os.path.join(top, s.name)
        os.makedirs(d, exist_ok=True)
        run = os.path.join(d, "run")
        if len(s.argv) == 1:
            # A program without arguments is the run file itself: no shell between.
            os.symlink(s.argv[0], run)
        else:
            with open(run, "w") as f:
                f.write("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in s.argv) + "\n")
            os.chmod(run, 0o755)


def _dpkg_version(package):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


class Runit(Peer):
    name = "runit"

    @classmethod
    def missing(cls):
        return have_commands("runsvdir", "runsv")

    @classmethod
    def version(cls):
        return _dpkg_version("runit")

    def start(self, services):
        top = os.path.join(self.workdir, "service")
        write_service_dirs(top, services)
        self.launch(["runsvdir", "-P", top], "runsvdir.out")

    def request_stop(self):
        # SIGHUP: runsvdir sends TERM to every runsv, each stops its service and exits
        for proc in self.procs:
            self.signal(proc, 1)


class S6(Peer):
    name = "s6"

    @classmethod
    def missing(cls):
        return have_commands("s6-svscan", "s6-supervise", "s6-svscanctl")

    @classmethod
    def version(cls):
        return _dpkg_version("s6")

    def start(self, services):
        self.top = os.path.join(self.workdir, "scan")
        write_service_dirs(self.top, services)
        self.launch(["s6-svscan", self.top], "s6-svscan.out")

    def request_stop(self):
        # -t: bring every service down, stop every s6-supervise, then exit
        subprocess.run(["s6-svscanctl", "-t", self.top], env=self.env(),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
