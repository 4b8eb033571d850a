"""Helpers to replay the captured ubus sessions (vectors/ubus-sessions.json)."""

import selectors
import socket
import struct
import time

from pyprocd.bus import frame as F

HELLO, DATA, ADD_OBJECT = 0, 2, 6


def recorded_ids(sessions):
    """Ids in the order ubusd allocated them: {"client": [...], "object": [...], "type": [...]}.

    Read from the HELLOs and the ADD_OBJECT replies of the whole capture, so a
    broker fed with them reproduces the captured bytes exactly.
    """
    ids = {"client": [], "object": [], "type": []}
    for session in sessions:
        adding = {}  # conn -> seq of a pending ADD_OBJECT
        for m in session["messages"]:
            raw = bytes.fromhex(m["hex"])
            _v, msg_type, seq, peer = F.header(raw)
            to_client = m["dir"].startswith("ubusd->")
            if msg_type == HELLO and to_client:
                ids["client"].append(peer)
            elif msg_type == ADD_OBJECT and not to_client:
                adding[m["conn"]] = seq
            elif msg_type == DATA and to_client and adding.get(m["conn"]) == seq:
                attrs = F.Attrs(F.body_of(raw))
                if F.A_OBJTYPE in attrs:
                    ids["type"].append(attrs.u32(F.A_OBJTYPE))
                ids["object"].append(attrs.u32(F.A_OBJID))
                del adding[m["conn"]]
    return ids


def id_source(ids):
    queues = {kind: list(values) for kind, values in ids.items()}

    def new_id(kind):
        return queues[kind].pop(0)

    return new_id


def last_message_index(session):
    """conn -> index of its last message in the session."""
    last = {}
    for i, m in enumerate(session["messages"]):
        last[m["conn"]] = i
    return last


def client_of(direction):
    """'X->ubusd' / 'ubusd->X' -> X"""
    a, b = direction.split("->")
    return b if a == "ubusd" else a


class FrameSocket:
    """A test-side blocking view of one connection, reading whole frames."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = F.FrameReader()
        self.frames = []

    def read_frame(self, pump, timeout=10.0):
        """Next complete frame; `pump(seconds)` lets the server side run meanwhile."""
        deadline = time.monotonic() + timeout
        while not self.frames:
            if time.monotonic() > deadline:
                raise TimeoutError("no frame")
            sel = selectors.DefaultSelector()
            sel.register(self.sock, selectors.EVENT_READ)
            ready = sel.select(0)
            sel.close()
            if ready:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                self.frames.extend(self.reader.feed(data))
            else:
                pump(0.02)
        return self.frames.pop(0)

    def pending(self):
        """Frames already readable without waiting."""
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.frames.extend(self.reader.feed(data))
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return self.frames

    def send(self, raw):
        self.sock.sendall(raw)

    def close(self):
        self.sock.close()


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return FrameSocket(sock)


def describe(raw):
    _v, t, seq, peer = F.header(raw)
    return f"type={t} seq={seq} peer={peer:08x} body={bytes(raw[8:]).hex()}"


def u32(value):
    return struct.pack(">I", value)
