"""Where log lines go: instance stdout/stderr and the daemon's own messages.

procd hands instance output to syslog(3) line by line with the ident
"<basename(argv0)>[<pid>]", the instance's facility, LOG_INFO for stdout and
LOG_ERR for stderr. We speak the syslog datagram protocol on the socket
ourselves (default /dev/log, configurable so tests can read it), because
Python's `syslog` module has one global ident per process.
"""

import _socket as socket  # C module: `socket` would import enum (~0.8 MB for the daemon's life)
import errno
import os
import sys
import time

from pyprocd.common import LOG_DAEMON, LOG_NOTICE

MAX_IDENT = 31  # procd truncates the ident to 31 characters
MAX_LINE = 4096  # a partial line longer than this is logged as it is


def instance_ident(argv0, pid):
    return f"{os.path.basename(argv0)}[{pid}]"[:MAX_IDENT]


class SyslogSink:
    """Sends RFC 3164-style datagrams to a unix socket; falls back to stderr.

    The fallback matters on hosts without a syslog daemon: output must not
    vanish (nothing lost), so it is printed with its ident and priority.
    """

    def __init__(self, path="/dev/log", fallback=None):
        self.path = path
        self.fallback = fallback if fallback is not None else sys.stderr
        self._sock = None

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return None
        return sock

    def send(self, priority, ident, message):
        stamp = time.strftime("%b %e %H:%M:%S")
        packet = f"<{priority}>{stamp} {ident}: {message}".encode("utf-8", "replace")
        for _attempt in (1, 2):
            if self._sock is None:
                self._sock = self._connect()
                if self._sock is None:
                    break
            try:
                self._sock.send(packet)
                return
            except OSError as e:
                # syslogd restarted (ECONNREFUSED/ENOTCONN): reconnect once.
                # Full (EAGAIN): drop rather than block the supervisor.
                if e.errno in (errno.EAGAIN, errno.ENOBUFS):
                    return
                self._sock.close()
                self._sock = None
        self._to_fallback(priority, ident, message)

    def _to_fallback(self, priority, ident, message):
        try:
            print(f"{ident}: {message}", file=self.fallback, flush=True)
        except (OSError, ValueError):
            pass

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class DaemonLog:
    """pyprocd's own log lines (ident "pyprocd"), and a memory of recent ones for tests."""

    def __init__(self, sink=None, ident="pyprocd", facility=LOG_DAEMON, keep=0):
        self.sink = sink
        self.ident = ident
        self.facility = facility
        self.keep = keep
        self.lines = []

    def __call__(self, message, priority=LOG_NOTICE):
        if self.keep:
            self.lines.append(message)
            del self.lines[: -self.keep]
        if self.sink is not None:
            self.sink.send(self.facility | priority, self.ident, message)
        else:
            print(f"{self.ident}: {message}", file=sys.stderr, flush=True)


class PipeLogger:
    """Reads one instance stream from a pipe and logs it line by line.

    Lives until EOF on the pipe, not until the instance exits: grandchildren
    may still hold the pipe, and lines written just before exit must still
    be logged.
    """

    def __init__(self, loop, fd, sink, ident, priority):
        self.loop = loop
        self.fd = fd
        self.sink = sink
        self.ident = ident
        self.priority = priority
        self.buffer = b""
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self):
        try:
            chunk = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        self.buffer += chunk
        self._emit_lines()

    def _emit_lines(self):
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self._log(line)
        while len(self.buffer) >= MAX_LINE:
            self._log(self.buffer[:MAX_LINE])
            self.buffer = self.buffer[MAX_LINE:]

    def _log(self, line):
        self.sink.send(self.priority, self.ident, line.decode("utf-8", "replace"))

    def close(self):
        if self.fd is None:
            return
        if self.buffer:
            self._log(self.buffer)
            self.buffer = b""
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = None
