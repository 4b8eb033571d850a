"""A fake clock and a fake host (core/host.py) for the core's state machine.

Nothing real happens: FakeLoop's time moves only when a test says so, and
FakeHost records what the core asked for and lets the test decide when and
how each process ends. Deterministic and fast.
"""

import heapq
import itertools

from pyprocd.common import SpawnError

SIGTERM, SIGKILL = 15, 9


def exited(code):
    return (code & 0xFF) << 8  # a raw wait status


def killed(sig):
    return sig


class _Timer:
    def __init__(self, loop, when, callback, args):
        self.loop, self.when, self.callback, self.args = loop, when, callback, args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True

    def remaining(self):
        return max(0.0, self.when - self.loop.now)


class FakeLoop:
    def __init__(self):
        self.now = 1000.0
        self._timers = []
        self._seq = itertools.count()

    def time(self):
        return self.now

    def call_later(self, delay, callback, *args):
        timer = _Timer(self, self.now + delay, callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def call_soon(self, callback, *args):
        return self.call_later(0, callback, *args)

    def advance(self, seconds):
        """Let `seconds` pass, running every timer due in that time, in order."""
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _seq, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.now = max(self.now, when)
            timer.callback(*timer.args)
        self.now = end


class FakeProc:
    def __init__(self, pid, spec, on_exit):
        self.pid, self.spec, self.on_exit = pid, spec, on_exit
        self.signals = []
        self.alive = True


class FakeHost:
    can_follow_pidfiles = False

    def __init__(self):
        self._pids = itertools.count(100)
        self.procs = {}  # pid -> FakeProc, every process ever started
        self.scripts = []  # argv of every helper script run
        self.executable = set()  # paths script_executable() says yes to
        self.pidfiles = {}
        self.fail_next_spawn = None  # an error message: the next spawn raises SpawnError
        self.ignore_sigterm = False  # processes started from now on survive SIGTERM
        self.on_run = None  # on_run(proc): what a process does first (spawn's last step)

    # -- processes -----------------------------------------------------------

    def spawn(self, spec, on_exit, on_forked=None, announce=None):
        if self.fail_next_spawn:
            message, self.fail_next_spawn = self.fail_next_spawn, None
            raise SpawnError(message)
        proc = FakeProc(next(self._pids), spec, on_exit)
        proc.ignores_sigterm = self.ignore_sigterm
        self.procs[proc.pid] = proc
        if on_forked is not None:
            on_forked(proc)
        if self.on_run is not None:
            self.on_run(proc)  # the process runs from here on
        return proc

    def kill(self, pid, sig, group=False):
        proc = self.procs.get(pid)
        if proc is None or not proc.alive:
            return 3  # ESRCH
        proc.signals.append(sig)
        if sig == SIGKILL or (sig == SIGTERM and not proc.ignores_sigterm):
            self.end(pid, killed(sig))
        return 0

    def end(self, pid, status, exec_error=None):
        """The process exits: the core hears of it as from the reaper."""
        proc = self.procs[pid]
        proc.alive = False
        proc.on_exit(status, exec_error)

    def run_script(self, argv, on_done):
        self.scripts.append(list(argv))
        return 0

    def follow_pidfile(self, path, proc, found, is_taken):
        found(None)

    def adopt_child(self, pid, on_exit):
        return FakeProc(pid, None, on_exit)

    def running(self):
        return sorted(p.pid for p in self.procs.values() if p.alive)

    # -- files and lookups ---------------------------------------------------------

    def write_pidfile(self, path, pid):
        self.pidfiles[path] = pid

    def remove_pidfile(self, path):
        self.pidfiles.pop(path, None)

    def script_executable(self, path):
        return path in self.executable

    def lookup_user(self, name):
        return {"root": (0, 0), "nobody": (65534, 65534)}.get(name)

    def lookup_group(self, name):
        return {"root": 0, "nogroup": 65534}.get(name)

    def ifindex(self, name):
        return {"lo": 1}.get(name, 0)

    def file_md5(self, path):
        return "0" * 32

    def have_ujail(self):
        return False
