"""Instance output reaches a slow syslog receiver whole: when the socket is full the
daemon holds lines back and stops reading the instance's pipe (the instance waits on
its own writes) instead of dropping them; only a receiver that stays stuck costs lines,
and then their number is logged."""

import socket
import threading
import time

import pytest

from pyprocd.api.service import call_service
from pyprocd.core.manager import ServiceManager
from pyprocd.loop import Loop
from pyprocd.process.host import Host
from pyprocd.process.logsink import DaemonLog, SyslogSink

DEADLINE = 180
LINES = 20000


class SlowReceiver:
    """A datagram socket standing in for /dev/log, read by a thread that pauses every
    few messages (a busy syslogd), or not at all while `hold` is set."""

    def __init__(self, path, every=20, pause=0.002):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.every, self.pause = every, pause
        self.hold = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            if self.hold.is_set():
                time.sleep(0.01)
                continue
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except TimeoutError:
                continue
            if len(self.messages) % self.every == 0:
                time.sleep(self.pause)

    def lines_of(self, ident):
        return [m.split(": ", 1)[1] for m in list(self.messages) if f" {ident}[" in m]

    def close(self):
        self.done.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def setup(tmp_path):
    loop = Loop()
    receiver = SlowReceiver(str(tmp_path / "log.sock"))
    made = {}

    def build(**sink_options):
        sink = SyslogSink(receiver.sock.getsockname(), loop=loop, **sink_options)
        log = DaemonLog(sink=sink)
        mgr = ServiceManager(loop, Host(loop, sink, log=log), log=log)
        made.update(sink=sink, mgr=mgr)
        return loop, mgr, sink, receiver

    yield build
    mgr = made.get("mgr")
    if mgr is not None:
        done = []
        mgr.stop_all(lambda: done.append(True))
        loop.run_until(lambda: done, 60)
    receiver.close()
    if made:
        made["sink"].close()
    loop.close()


def count_command(n):
    return ["/bin/sh", "-c", f"i=0; while [ $i -lt {n} ]; do echo line$i; i=$((i+1)); done"]


def test_a_burst_reaches_a_slow_receiver_whole_and_in_order(setup):
    loop, mgr, _sink, receiver = setup()
    call_service(mgr, "set", {"name": "burst", "instances": {"i": {
        "command": ["/usr/bin/seq", "1", str(LINES)], "stdout": True}}})
    assert loop.run_until(lambda: len(receiver.lines_of("seq")) >= LINES, DEADLINE), \
        f"{len(receiver.lines_of('seq'))} of {LINES} lines arrived"
    assert receiver.lines_of("seq") == [str(n) for n in range(1, LINES + 1)]


def test_a_stuck_receiver_costs_lines_that_are_counted_and_logged(setup):
    loop, mgr, sink, receiver = setup(stall_limit=0.5)
    receiver.hold.set()
    call_service(mgr, "set", {"name": "stuck", "instances": {"i": {
        "command": count_command(3000), "stdout": True}}})
    inst = mgr.services["stuck"].instances["i"]
    # the instance is not blocked for good: past the stall limit lines are dropped
    assert loop.run_until(lambda: not inst.running, DEADLINE)
    assert loop.run_until(lambda: sink.dropped > 0, DEADLINE)
    receiver.hold.clear()
    assert loop.run_until(lambda: [m for m in list(receiver.messages) if "log lines dropped" in m],
                          DEADLINE)
    report = [m for m in list(receiver.messages) if "log lines dropped" in m]
    got = receiver.lines_of("sh")
    dropped = int(report[0].split("pyprocd: ")[1].split()[0])
    assert dropped == sink.dropped and len(got) < 3000
    # every line arrived or was counted (the count may include the daemon's own lines)
    assert 3000 <= len(got) + dropped <= 3000 + 20, (len(got), dropped)
