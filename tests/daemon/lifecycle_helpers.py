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
        """Kill what is left (a failed test), descendants included: a killed
        daemon's instances would otherwise outlive the test."""
        doomed = set(self.pids)
        for pid in list(doomed):
            doomed |= descendants(pid)
        for pid in sorted(doomed, key=lambda p: p not in self.pids):  # leaves first
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # Re-parented orphans become our children a moment later: retry a while.
        deadline = time.monotonic() + 10
        while doomed and time.monotonic() < deadline:
            for pid in list(doomed):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        doomed.discard(pid)
                except ChildProcessError:
                    if not alive(pid):  # gone, or a zombie someone else reaps
                        doomed.discard(pid)
            if doomed:
                time.sleep(0.02)
        self.pids.clear()


def descendants(pid):
    """All live descendants of pid (from /proc/<pid>/task/*/children)."""
    found = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            for child in children:
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def run_dummy(*args, timeout=DEADLINE):
    """Run the dummy daemon in the foreground of this call (it detaches)."""
    return subprocess.run([sys.executable, DUMMY, *args], check=False, capture_output=True,
                          text=True, timeout=timeout)


MINI = str(HERE / "mini_daemon.py")


class Mini:
    """Drives one mini daemon (tests/daemon/mini_daemon.py) in tmp_path."""

    def __init__(self, procs, tmp_path, name="mini", state=None):
        self.procs = procs
        self.control = str(tmp_path / f"{name}.sock")
        self.output = tmp_path / f"{name}.log"
        self.pidfile = tmp_path / f"{name}.pid"
        self.state = state or tmp_path / "state.json"
        self.pid = None

    def args(self, *extra):
        return [sys.executable, MINI, "--detach", "--no-chdir", f"--pidfile={self.pidfile}",
                f"--state-file={self.state}", f"--control={self.control}",
                f"--output={self.output}", *extra]

    def start(self, *extra, env=None):
        result = subprocess.run(self.args(*extra), check=False, capture_output=True, text=True,
                                timeout=DEADLINE, env=env)
        assert result.returncode == 0, result.stderr
        self.pid = self.procs.track(int(Path(self.pidfile).read_text()))
        return self.pid

    def call(self, method, msg=None, timeout=DEADLINE):
        """One request; retried while the daemon is not listening (re-exec)."""
        import json
        import socket

        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(timeout)
                    s.connect(self.control)
                    s.sendall(json.dumps({"method": method, "msg": msg}).encode() + b"\n")
                    data = b""
                    while not data.endswith(b"\n"):
                        chunk = s.recv(1 << 20)
                        if not chunk:
                            raise ConnectionResetError("closed without reply")
                        data += chunk
                answer = json.loads(data)
                return answer["status"], answer["reply"]
            except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def instances(self, service, verbose=False):
        status, reply = self.call("list", {"name": service, "verbose": verbose})
        assert status == 0
        return reply.get(service, {}).get("instances", {})

    def pids(self, service):
        return {n: i.get("pid") for n, i in self.instances(service).items()}

    def lines(self):
        text = read_text(self.output) or ""
        return text.splitlines()

    def stop(self):
        os.kill(self.pid, signal.SIGTERM)
        return self.procs.reap(self.pid)
