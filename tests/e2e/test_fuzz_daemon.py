"""Garbage calls to the daemon's `service` object: it answers, logs, and goes on.

Seeded, bounded: random methods (procd's, pyprocd's, unknown) with random
blobmsg arguments (wrong types, bad sizes, truncated children, deep nesting)
and raw garbage as arguments, sent as INVOKEs through the real bus to the
real daemon process. Afterwards the daemon must be alive, answer `list`
normally, and its stderr must hold no traceback.
"""

import random
import socket
import time

from pyprocd.api.service import PROCD_METHODS
from pyprocd.bus import frame as F
from pyprocd.bus.client import BlockingUbus
from tests.bus import fuzzgen
from tests.e2e.stack import Stack

CALLS = 600
METHODS = [name for name, _ in PROCD_METHODS] + ["revive", "nosuch", "", "list\x00x"]


def test_daemon_survives_garbage_calls(tmp_path):
    stack = Stack(tmp_path).start()
    rng = random.Random(4321)
    try:
        with BlockingUbus(stack.socket) as bus:
            status, objects = bus.lookup("service")
        assert status == 0
        objid = objects[0].id
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(stack.socket)
        sock.settimeout(30)
        reader = F.FrameReader()
        statuses = 0
        for seq in range(1, CALLS + 1):
            if rng.random() < 0.2:
                data = fuzzgen.garbage(rng)
            else:
                data = fuzzgen.blobmsg_children(rng)
            if b"command" in data:
                continue  # never start random programs
            body = (F.attr_u32(F.A_OBJID, objid) + F.attr_str(F.A_METHOD, rng.choice(METHODS))
                    + F.attr(F.A_DATA, data))
            sock.sendall(F.message(F.INVOKE, seq, objid, body))
            # wait for this call's STATUS: the daemon answers every call
            deadline = time.monotonic() + 60
            answered = False
            while not answered:
                assert time.monotonic() < deadline, f"no answer to call {seq}"
                for raw in reader.feed(sock.recv(65536)):
                    _v, msg_type, got_seq, _peer = F.header(raw)
                    answered |= msg_type == F.STATUS and got_seq == seq
            statuses += 1
        sock.close()
        assert statuses > CALLS // 2
        assert stack.daemon.poll() is None
        assert stack.call("list", {"name": "nothing-here"}) == (0, {})
    finally:
        # whatever the fuzz created, remove it (no instance has a command)
        if stack.daemon is not None and stack.daemon.poll() is None:
            status, services = stack.call("list", {})
            for name in services or {}:
                stack.call("delete", {"name": name})
        stack.close()
    assert "Traceback" not in stack.daemon_stderr(), stack.daemon_stderr()
