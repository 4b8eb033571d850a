"""Helpers for lifecycle tests: waiting on conditions, reaping detached daemons.

Detached daemons leave their parent, so the test process makes itself a child
subreaper while a test runs: orphans come back to it and are reaped here
(PID 1 in containers often reaps nothing).
"""

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DUMMY = str(HERE / "dummy_daemon.py")
PR_SET_CHILD_SUBREAPER = 36
DEADLINE = 60.0  # generous: the CI machine is shared and slow


def set_subreaper(on):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)


def wait_for(condition, timeout=DEADLINE, what="condition"):
    """Poll condition() until true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def ppid_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def read_text(path):
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return None


class Procs:
    """Tracks pids a test started (directly or detached) and cleans them up."""

    def __init__(self):
        self.pids = set()

    def track(self, pid):
        self.pids.add(pid)
        return pid

    def reap(self, pid, timeout=DEADLINE):
        """Wait for our (re-parented) child pid; returns its raw status."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                wait_for(lambda: not alive(pid), max(1.0, deadline - time.monotonic()),
                         f"pid {pid} to exit")
                return None
            if got == pid:
                self.pids.discard(pid)
                return status
            if time.monotonic() > deadline:
                pytest.fail(f"pid {pid} did not exit within {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def cleanup(self):
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in list(self.pids):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.pids.clear()


def run_dummy(*args, timeout=DEADLINE):
    """Run the dummy daemon in the foreground of this call (it detaches)."""
    return subprocess.run([sys.executable, DUMMY, *args], capture_output=True,
                          text=True, timeout=timeout)
