"""Live re-exec and crash takeover with many instances.

run(quick) -> dict with, for N instances (1000; 100 when quick), each with
stdout and stderr captured (2 log pipes each, all handed over):
  reexec_s:        `reexec` request -> the new image serves requests again,
                   all instances adopted (median of the repetitions, and all)
  takeover_s:      daemon SIGKILLed -> a daemon started by hand is ready with
                   every instance adopted from the state file (includes the
                   interpreter's start-up)
  state_bytes:     size of the crash-survival state file
  rss_anon_kb_before / _after: daemon anonymous RSS before the first and
                   after the last re-exec
  pids_kept:       every instance pid unchanged after all of it (must be true)

The daemon is tests/daemon/mini_daemon.py: the real lifecycle, loop,
spawner, manager and survival code, with a JSON control socket instead of
ubus, so the figure is the handover itself and not bus reconnection.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC = os.path.join(ROOT, "src")
MINI = os.path.join(ROOT, "tests", "daemon", "mini_daemon.py")
DEADLINE = 300.0


def _call(control, method, msg=None, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(control)
                s.sendall(json.dumps({"method": method, "msg": msg}).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(1 << 22)
                    if not chunk:
                        raise ConnectionResetError
                    data += chunk
            answer = json.loads(data)
            return answer["status"], answer["reply"]
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def _pids(control):
    _status, reply = _call(control, "list", {"name": "bench"})
    return {n: i.get("pid") for n, i in reply.get("bench", {}).get("instances", {}).items()}


def _rss_kb(pid):
    """Anonymous RSS: the daemon's own memory (file pages are shared, and an
    exec maps libraries afresh, which moves RssFile without costing memory)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def _count(path, text):
    try:
        with open(path, "rb") as f:
            return f.read().count(text.encode())
    except FileNotFoundError:
        return 0


def _wait(condition, what):
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.002)


class _Daemon:
    def __init__(self, tmp):
        self.control = os.path.join(tmp, "control.sock")
        self.output = os.path.join(tmp, "output.log")
        self.pidfile = os.path.join(tmp, "bench.pid")
        self.state = os.path.join(tmp, "state.json")
        self.env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.pid = None

    def start(self):
        argv = [sys.executable, MINI, "--detach", "--no-chdir", f"--pidfile={self.pidfile}",
                f"--state-file={self.state}", f"--control={self.control}",
                f"--output={self.output}"]
        subprocess.run(argv, check=True, env=self.env, timeout=DEADLINE)
        with open(self.pidfile) as f:
            self.pid = int(f.read())

    def reexec(self):
        done = _count(self.output, "re-exec done")
        t0 = time.perf_counter()
        _call(self.control, "reexec", {})
        _wait(lambda: _count(self.output, "re-exec done") > done, "re-exec")
        _call(self.control, "_pid")  # serving again
        return time.perf_counter() - t0

    def takeover(self):
        os.kill(self.pid, signal.SIGKILL)
        _reap(self.pid)
        t0 = time.perf_counter()
        self.start()
        return time.perf_counter() - t0

    def stop(self, pids):
        if self.pid:
            for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL if SIGTERM did not end it
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    break
                if _reap(self.pid):
                    break
        for pid in pids:  # instances adopted after the SIGKILL are our children now
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)


def _reap(pid):
    """Wait for pid to end (reaped if it is our child); False if it is still running."""
    try:
        os.waitpid(pid, 0)
        return True
    except ChildProcessError:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rpartition(")")[2].split()[0] == "Z":
                        return True
            except OSError:
                return True
            time.sleep(0.01)
        return False


def run(quick):
    count = 100 if quick else 1000
    reps = 2 if quick else 3
    from bench.peers import guard

    guard.become_subreaper()
    with tempfile.TemporaryDirectory(prefix="pyprocd-bench-reexec-") as tmp:
        daemon = _Daemon(tmp)
        pids = {}
        try:
            daemon.start()
            service = {"name": "bench", "instances": {
                f"i{n:04d}": {"command": ["sleep", "100000"], "stdout": True, "stderr": True,
                              "respawn": ["3600", "5", "5"]} for n in range(count)}}
            t0 = time.perf_counter()
            _call(daemon.control, "set", service)
            _wait(lambda: all((pids := _pids(daemon.control)).values()) and len(pids) == count,
                  "all running")
            start_s = time.perf_counter() - t0
            pids = _pids(daemon.control)
            rss_before = _rss_kb(daemon.pid)
            times = [daemon.reexec() for _ in range(reps)]
            rss_after = _rss_kb(daemon.pid)
            same_after_reexec = _pids(daemon.control) == pids
            _wait(lambda: os.path.exists(daemon.state)
                  and _count(daemon.state, '"pid"') >= count, "state file")
            state_bytes = os.path.getsize(daemon.state)
            takeover_s = daemon.takeover()
            pids_kept = same_after_reexec and _pids(daemon.control) == pids
        finally:
            daemon.stop(list(pids.values()))
    return {
        "instances": count,
        "start_all_s": round(start_s, 3),
        "reexec_s": round(statistics.median(times), 4),
        "reexec_all_s": [round(t, 4) for t in times],
        "takeover_s": round(takeover_s, 3),
        "state_bytes": state_bytes,
        "rss_anon_kb_before": rss_before,
        "rss_anon_kb_after": rss_after,
        "pids_kept": pids_kept,
    }


if __name__ == "__main__":
    if SRC not in sys.path:
        sys.path.insert(0, SRC)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    print(json.dumps(run("--quick" in sys.argv), indent=1))
