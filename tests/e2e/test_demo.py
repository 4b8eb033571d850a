"""`make run` (python3 -m pyprocd.demo): starts, serves the demo, stops with nothing left."""

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time

from pyprocd.bus.client import BlockingUbus
from tests.core.vector_replay import pid_alive
from tests.e2e.stack import wait_for


class Output:
    """The demo's stdout, read without blocking past a deadline."""

    def __init__(self, proc):
        self.fd = proc.stdout.fileno()
        self.text = ""
        self.seen = 0

    def until(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.fd, selectors.EVENT_READ)
        try:
            while True:
                m = re.compile(pattern).search(self.text, self.seen)
                if m:
                    self.seen = m.end()
                    return m
                left = deadline - time.monotonic()
                assert left > 0, f"demo never printed {pattern!r}:\n{self.text}"
                if sel.select(min(left, 0.5)):
                    chunk = os.read(self.fd, 65536)
                    assert chunk, f"demo closed its output:\n{self.text}"
                    self.text += chunk.decode()
        finally:
            sel.close()


def _instances(socket_path):
    with BlockingUbus(socket_path, timeout=10) as bus:
        status, replies = bus.call("service", "list", {})
    assert status == 0
    return {name: svc["instances"]["main"] for name, svc in replies[0].items()}


@contextlib.contextmanager
def running_demo(tmp_path):
    """`python3 -m pyprocd.demo` with its stdout piped to us; stopped the orderly way
    (SIGTERM, then SIGKILL only if that fails) whatever the test did."""
    with open(tmp_path / "demo.stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pyprocd.demo"], stdout=subprocess.PIPE,
                                stderr=err)
    try:
        yield proc, Output(proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_demo_runs_and_stops_cleanly(tmp_path):
    with running_demo(tmp_path) as (proc, out):
        m = out.until(r"bus pid (\d+), daemon pid (\d+)")
        bus_pid, daemon_pid = int(m.group(1)), int(m.group(2))
        m = out.until(r"python3 -m pyprocd ubus -s (\S+) call service list")
        socket_path = m.group(1)
        listed = _instances(socket_path)
        assert sorted(listed) == ["crasher", "limited", "talker"]
        if os.geteuid() == 0:
            assert listed["limited"]["user"] == "nobody"
        first = listed["crasher"].get("pid")
        # the crasher exits after 2 s and is started again
        assert wait_for(lambda: _instances(socket_path)["crasher"].get("pid") not in (None, first),
                        60, 0.2)
        pids = [i["pid"] for i in _instances(socket_path).values() if i.get("running")]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
        for pid in [bus_pid, daemon_pid, *pids]:
            assert not pid_alive(pid), pid
        assert not os.path.exists(os.path.dirname(socket_path))


def test_demo_with_closed_stdout_stops_cleanly(tmp_path):
    """`make run | head`: the reader goes away; a stop still takes every process with it."""
    with running_demo(tmp_path) as (proc, out):
        m = out.until(r"bus pid (\d+), daemon pid (\d+)")
        bus_pid, daemon_pid = int(m.group(1)), int(m.group(2))
        socket_path = out.until(r"python3 -m pyprocd ubus -s (\S+) call service list").group(1)
        assert wait_for(lambda: all(i.get("running") for i in _instances(socket_path).values()),
                        60, 0.2)
        pids = [i["pid"] for i in _instances(socket_path).values()]
        proc.stdout.close()  # like `head` exiting: the demo's next print meets EPIPE
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0, (tmp_path / "demo.stderr").read_text()
        assert "Traceback" not in (tmp_path / "demo.stderr").read_text()
        for pid in [bus_pid, daemon_pid, *pids]:
            assert wait_for(lambda pid=pid: not pid_alive(pid), 30, 0.1), pid
        assert not os.path.exists(os.path.dirname(socket_path))


def test_demo_banner_signal_example_keeps_the_talker(tmp_path):
    """The banner suggests `signal 10` to the talker: it must answer, not die for good."""
    with running_demo(tmp_path) as (_proc, out):
        socket_path = out.until(r"python3 -m pyprocd ubus -s (\S+) call service list").group(1)
        assert '"signal":10' in out.until(r"call service signal '(.*)'").group(1)
        assert wait_for(lambda: _instances(socket_path)["talker"].get("running"), 60, 0.2)
        talker = _instances(socket_path)["talker"]["pid"]
        # like a person reading the banner: signal once the talker talks (its trap is set)
        assert wait_for(lambda: "talker: tick" in
                        (tmp_path / "demo.stderr").read_text(errors="replace"), 60, 0.2)
        with BlockingUbus(socket_path, timeout=10) as bus:
            assert bus.call("service", "signal", {"name": "talker", "signal": 10})[0] == 0
        # the trap runs once the talker's current `sleep 5` returns
        assert wait_for(lambda: "talker: got SIGUSR1" in
                        (tmp_path / "demo.stderr").read_text(errors="replace"), 60, 0.2)
        assert _instances(socket_path)["talker"].get("pid") == talker
        assert pid_alive(talker)
