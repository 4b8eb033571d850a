"""The real daemon (`python3 -m pyprocd`) over a real bus: readiness, takeover, re-exec, revive."""

import os
import signal
import subprocess
import sys

import pytest

from tests.daemon.lifecycle_helpers import DEADLINE, alive, read_text, wait_for
from tests.e2e.stack import Stack, object_listed


class _SyslogReader:
    """Keeps the daemon's log (its stderr is /dev/null once detached)."""

    def __init__(self, path):
        import socket

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.lines = []

    def read(self):
        while True:
            try:
                self.lines.append(self.sock.recv(65536).decode(errors="replace"))
            except BlockingIOError:
                return self.lines


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    s.log = _SyslogReader(s.syslog)
    s.start_bus()
    try:
        yield s
    finally:
        s.stop_bus()
        print("\n".join(s.log.read()))
        s.log.sock.close()


def _start(stack, tmp_path, *extra):
    argv = [sys.executable, "-m", "pyprocd", "-s", stack.socket, "--syslog", stack.syslog,
            "--detach", f"--pidfile={tmp_path}/pyprocd.pid",
            f"--state-file={tmp_path}/state.json", f"--confdir={tmp_path}",
            f"--initd-dir={tmp_path}", *extra]
    result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=DEADLINE)
    return result, int(read_text(tmp_path / "pyprocd.pid") or 0)


def _pids(stack):
    status, reply = stack.call("list", {"name": "web"})
    assert status == 0
    return {n: i.get("pid") for n, i in reply["web"]["instances"].items()}


def test_real_daemon_detach_takeover_reexec(procs, stack, tmp_path):
    result, daemon = _start(stack, tmp_path)
    assert result.returncode == 0, result.stderr
    procs.track(daemon)
    # --detach returned: the object is registered already, no waiting needed.
    assert object_listed(stack.socket, "service")

    again, _ = _start(stack, tmp_path)
    assert again.returncode == 1 and f"already running (pid {daemon})" in again.stderr

    service = {"name": "web", "instances": {
        f"w{n}": {"command": ["sleep", "1000"], "respawn": ["3600", "0", "5"]} for n in range(3)}}
    assert stack.call("set", service)[0] == 0
    pids = wait_for(lambda: (p := _pids(stack)) and all(p.values()) and p, what="running")
    for pid in pids.values():
        procs.track(pid)
    wait_for(lambda: all(str(p) in (read_text(tmp_path / "state.json") or "")
                         for p in pids.values()), what="state file")

    os.kill(daemon, signal.SIGKILL)
    procs.reap(daemon)
    result, daemon = _start(stack, tmp_path)
    assert result.returncode == 0, result.stderr
    procs.track(daemon)
    assert _pids(stack) == pids  # taken back, nothing started twice

    status, reply = stack.call("reexec", {})
    assert status == 0 and reply == {"pid": daemon}
    wait_for(lambda: any("re-exec done: kept 3" in line for line in stack.log.read()),
             what="re-exec")
    # Back on the bus after the exec, same pid, same instances.
    wait_for(lambda: object_listed(stack.socket, "service") and stack.call(
        "list", {"name": "web"})[0] == 0, what="object back on the bus")
    assert _pids(stack) == pids
    assert read_text(tmp_path / "pyprocd.pid") == f"{daemon}\n"
    assert stack.call("revive", {})[1] == {"revived": []}

    os.kill(daemon, signal.SIGTERM)
    assert os.waitstatus_to_exitcode(procs.reap(daemon)) == 0
    for pid in pids.values():
        procs.reap(pid)  # stopped by the daemon (they were re-parented to us)
        assert not alive(pid)
    assert not (tmp_path / "pyprocd.pid").exists()
    assert not (tmp_path / "state.json").exists()


def test_real_daemon_detach_reports_bad_pidfile_dir(procs, stack, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = [sys.executable, "-m", "pyprocd", "-s", stack.socket, "--detach",
            f"--pidfile={blocker}/sub/pyprocd.pid", "--state-file=none"]
    result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 1
    assert "pyprocd.pid" in result.stderr


def test_monitor_restarts_crashed_daemon_which_takes_instances_back(procs, stack, tmp_path):
    from tests.daemon.lifecycle_helpers import ppid_of

    result, daemon = _start(stack, tmp_path, "--monitor", "--monitor-interval=0.2")
    assert result.returncode == 0, result.stderr
    monitor = procs.track(ppid_of(daemon))
    procs.track(daemon)
    service = {"name": "web", "instances": {"w0": {"command": ["sleep", "1000"]}}}
    assert stack.call("set", service)[0] == 0
    pids = wait_for(lambda: (p := _pids(stack)) and all(p.values()) and p, what="running")
    procs.track(pids["w0"])
    wait_for(lambda: str(pids["w0"]) in (read_text(tmp_path / "state.json") or ""),
             what="state file")

    os.kill(daemon, signal.SIGSEGV)
    new = wait_for(lambda: (p := int(read_text(tmp_path / "pyprocd.pid") or 0)) != daemon
                   and alive(p) and p, what="restarted daemon")
    procs.track(new)
    assert ppid_of(new) == monitor
    wait_for(lambda: any("took back 1 running" in line for line in stack.log.read()),
             what="takeover")
    wait_for(lambda: object_listed(stack.socket, "service"), what="object back")
    assert _pids(stack) == pids

    os.kill(new, signal.SIGTERM)  # clean exit: the monitor ends too
    assert os.waitstatus_to_exitcode(procs.reap(monitor)) == 0
    procs.reap(new)
    procs.reap(pids["w0"])
