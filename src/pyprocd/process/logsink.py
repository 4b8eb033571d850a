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
from _collections import deque  # C module: `collections` costs the daemon ~0.3 MB

from pyprocd.common import LOG_DAEMON, LOG_NOTICE, LOG_WARNING

MAX_IDENT = 31  # procd truncates the ident to 31 characters
MAX_LINE = 4096  # a partial line longer than this is logged as it is


def instance_ident(argv0, pid):
    return f"{os.path.basename(argv0)}[{pid}]"[:MAX_IDENT]


class SyslogSink:
    """Sends RFC 3164-style datagrams to a unix socket; falls back to stderr.

    The fallback matters on hosts without a syslog daemon: output must not
    vanish (nothing lost), so it is printed with its ident and priority.

    A busy syslogd fills the socket (EAGAIN). With a loop, lines then wait in a
    queue sent on as the socket becomes writable, and the pipe loggers stop reading
    while the queue is over PAUSE_AT bytes (`congested()`), so a chatty instance
    waits on its own writes instead of losing lines. A receiver that takes nothing
    for `stall_limit` seconds, or a queue over DROP_AT, costs lines: they are
    counted (`dropped`) and their number is logged once the socket takes lines again.
    """

    PAUSE_AT = 64 << 10
    DROP_AT = 1 << 20

    def __init__(self, path="/dev/log", fallback=None, loop=None, stall_limit=10.0):
        self.path = path
        self.fallback = fallback if fallback is not None else sys.stderr
        self.loop = loop
        self.stall_limit = stall_limit
        self.dropped = 0           # lines lost for good since start
        self._unreported = 0       # ... not yet told in a log line
        self._sock = None
        self._queue = deque()      # (packet, fallback text) waiting for room
        self._queued = 0           # bytes in _queue
        self._writer_fd = None     # the socket fd the loop watches for room
        self._waiting = []         # callbacks of loggers paused until there is room
        self._stalled = False
        self._progress = 0.0       # loop time of the last packet the socket took
        self._stall_timer = None

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
        text = f"{ident}: {message}"
        if self._queue:
            self._enqueue(packet, text)   # behind what waits: lines stay in order
        elif not self._try_send(packet, text):
            self._enqueue(packet, text)
        elif self._unreported:
            self._report_drops()

    def congested(self):
        """True while pipe loggers should stop reading (see when_ready)."""
        return self._queued >= self.PAUSE_AT and not self._stalled

    def when_ready(self, callback):
        """callback() once the queue has room again (or the receiver is given up on)."""
        self._waiting.append(callback)

    def _try_send(self, packet, text):
        """True when the line is gone (sent, or printed by the fallback); False when
        the socket is full."""
        for _attempt in (1, 2):
            if self._sock is None:
                self._sock = self._connect()
                if self._sock is None:
                    break
            try:
                self._sock.send(packet)
                return True
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    return False
                # syslogd restarted (ECONNREFUSED/ENOTCONN): reconnect once.
                self._drop_socket()
        self._to_fallback(text)
        return True

    def _enqueue(self, packet, text):
        if self.loop is None or self._stalled or self._queued + len(packet) > self.DROP_AT:
            self.dropped += 1
            self._unreported += 1
            return
        self._queue.append((packet, text))
        self._queued += len(packet)
        self._watch()

    def _watch(self):
        if self._writer_fd is not None or self._sock is None:
            return
        self._writer_fd = self._sock.fileno()
        self.loop.add_writer(self._writer_fd, self._flush)
        self._progress = self.loop.time()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.stall_limit, self._check_stall)

    def _unwatch(self):
        if self._writer_fd is not None:
            self.loop.remove_writer(self._writer_fd)
            self._writer_fd = None
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _flush(self):
        """The socket has room: send what waits, oldest first."""
        queue = self._queue
        while queue:
            packet, text = queue[0]
            if not self._try_send(packet, text):
                break
            queue.popleft()
            self._queued -= len(packet)
            self._progress = self.loop.time()
            self._stalled = False
        if queue and self._writer_fd is None:
            self._watch()   # the socket was replaced while sending
        if self._queued < self.PAUSE_AT // 2:
            self._wake_loggers()
        if not queue:
            self._unwatch()
            self._stalled = False
            if self._unreported:
                self._report_drops()

    def _check_stall(self):
        self._stall_timer = None
        if not self._queue:
            return
        idle = self.loop.time() - self._progress
        if idle < self.stall_limit:
            self._stall_timer = self.loop.call_later(self.stall_limit - idle, self._check_stall)
            return
        # Nothing taken for stall_limit s: stop holding instances back; new lines
        # are counted and dropped until the receiver takes lines again.
        self._stalled = True
        self._wake_loggers()
        self._stall_timer = self.loop.call_later(self.stall_limit, self._check_stall)

    def _wake_loggers(self):
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback()

    def _report_drops(self):
        count, self._unreported = self._unreported, 0
        self.send(LOG_DAEMON | LOG_WARNING, "pyprocd",
                  f"{count} log lines dropped: the syslog socket was full")

    def _drop_socket(self):
        if self._sock is not None:
            if self._writer_fd is not None:
                self.loop.remove_writer(self._writer_fd)
                self._writer_fd = None
            self._sock.close()
            self._sock = None

    def _to_fallback(self, text):
        try:
            print(text, file=self.fallback, flush=True)
        except (OSError, ValueError):
            pass

    def close(self):
        for _packet, text in self._queue:
            self._to_fallback(text)   # not lost: the fallback gets what syslog did not
        self._queue.clear()
        self._queued = 0
        self._unwatch()
        if self._unreported:
            self._to_fallback(f"pyprocd: {self._unreported} log lines dropped: "
                              "the syslog socket was full")
            self._unreported = 0
        self._drop_socket()


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


def _never():
    return False


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
        self.paused = False
        # A sink with nothing but send() (a file, a test's list) never holds us back.
        self._congested = getattr(sink, "congested", _never)
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
        """Log the complete lines in the buffer (and cut a partial one longer than
        MAX_LINE). While the sink is congested the rest stays in the buffer and the
        pipe is not read: the instance's writes wait, nothing is lost."""
        buf, pos = self.buffer, 0
        congested = self._congested
        while True:
            if congested():
                self.buffer = buf[pos:]
                self._pause()
                return
            end = buf.find(b"\n", pos)
            if end >= 0:
                after = end + 1
            elif len(buf) - pos >= MAX_LINE:
                end = after = pos + MAX_LINE
            else:
                break
            self._log(buf[pos:end])
            pos = after
        self.buffer = buf[pos:]

    def _pause(self):
        if not self.paused:
            self.paused = True
            self.loop.remove_reader(self.fd)
            self.sink.when_ready(self._resume)

    def _resume(self):
        self.paused = False
        if self.fd is None:
            return
        self._emit_lines()
        if not self.paused:
            self.loop.add_reader(self.fd, self._readable)

    def _log(self, line):
        self.sink.send(self.priority, self.ident, line.decode("utf-8", "replace"))

    def close(self):
        if self.fd is None:
            return
        if self.buffer:
            lines = self.buffer.split(b"\n")   # more than one if closed while paused
            if not lines[-1]:
                lines.pop()
            for line in lines:
                self._log(line)
            self.buffer = b""
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = None
