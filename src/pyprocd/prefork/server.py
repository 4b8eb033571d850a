"""The script side of chiark's prefork-interp, in Python (spec/prefork-protocol.md).

A script run by the C client (`#!/usr/bin/prefork-interp -U python3`) does its
imports and set-up, then calls `initialisation_complete()`. The first time,
that turns the process into a server (the client's `waitpid` sees the setup
exit 0), and every call, the first one included, returns from
`initialisation_complete()` in a fresh fork of the warm server, the executor,
with the caller's fds 0-2, environment and argv. The executor's wait status
goes back to the client, which exits with it or dies of the same signal.

Processes: SERVER (session leader, accepts) -> MONITOR per call (own process
group, speaks the protocol, reports the status) -> EXECUTOR (the script's
per-call code). Without PREFORK_INTERP in the environment the call does
nothing: the script simply runs on, standalone.
"""

import os
import select
import signal
import socket
import struct
import sys

GREETING = b"PFI\n" + b"\0\0\0\0"  # magic + xdata length 0 (zero in any byte order)
CONCURRENCY = 4  # live monitors before the server waits for one (the Perl default)
IDLE_TIMEOUT = 1_000_000.0  # seconds without a call before the server exits (Perl default)


class ProtocolError(Exception):
    pass


def initialisation_complete(*, concurrency=CONCURRENCY, idle_timeout=IDLE_TIMEOUT,
                            extra_files=(), log_ident=None):
    """Become the prefork server (first call) and return only in each call's executor.

    concurrency: monitors alive at once before the server waits (negative: no limit).
    idle_timeout: seconds without a connection before the server exits (None: never).
    extra_files: files besides the script and its modules whose change (mtime after
    the server's start) makes the server quit so that the next call starts afresh.
    """
    raw = os.environb.get(b"PREFORK_INTERP")
    if raw is None:
        return  # run standalone: the script goes on as an ordinary process
    fds, started = parse_environment(raw)
    del os.environ["PREFORK_INTERP"]  # not for the calls' environment
    listen_fd, call_fd, watch_in, watch_err = fds
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        os._exit(0)  # the client's waitpid(SETUP): set-up succeeded
    os.setsid()
    server = Server(listen_fd, watch_in, watch_err, started, concurrency, idle_timeout,
                    extra_files, log_ident or f"prefork-interp {sys.argv[0]}")
    if server.fork_monitor(call_fd):
        return  # executor of the first call
    server.detach_stdio()
    if server.serve():
        return  # executor of a later call
    os._exit(0)


def parse_environment(raw):
    """PREFORK_INTERP=`v1,SECS.NSECS LISTEN,CALL,WATCHI,WATCHE` -> (four fds, start time ns)."""
    words = raw.split(b" ")
    if len(words) < 2:
        raise ProtocolError(f"PREFORK_INTERP {raw!r}: too few words")
    first, second = words[0].split(b","), words[1].split(b",")
    if first[0] != b"v1":
        raise ProtocolError(f"PREFORK_INTERP {raw!r}: not v1 (incompatible prefork-interp)")
    if len(first) < 2 or len(second) < 4:
        raise ProtocolError(f"PREFORK_INTERP {raw!r}: missing fields")
    secs, _, nsecs = first[1].partition(b".")
    if not (secs.isdigit() and nsecs.isdigit() and len(nsecs) == 9):
        raise ProtocolError(f"PREFORK_INTERP {raw!r}: bad start time")
    if not all(f.isdigit() for f in second[:4]):
        raise ProtocolError(f"PREFORK_INTERP {raw!r}: bad descriptors")
    return tuple(int(f) for f in second[:4]), int(secs) * 1_000_000_000 + int(nsecs)


def decode_request(payload):
    """NUL-terminated `NAME=value`..., an empty string, then [INTERP, SCRIPT?, ARGS...]."""
    if not payload.endswith(b"\0"):
        raise ProtocolError("request does not end in NUL")
    strings = payload[:-1].split(b"\0")
    if b"" not in strings:
        raise ProtocolError("request has no end of environment")
    end = strings.index(b"")
    env, argv = strings[:end], strings[end + 1:]
    if not argv:
        raise ProtocolError("request has no interpreter")
    for entry in env:
        if b"=" not in entry:
            raise ProtocolError(f"environment entry without '=': {entry!r}")
    return [e.split(b"=", 1) for e in env], argv


class Server:
    def __init__(self, listen_fd, watch_in, watch_err, started_ns, concurrency, idle_timeout,
                 extra_files, log_ident):
        self.listen = socket.socket(fileno=listen_fd)
        self.listen.setblocking(False)
        self.watch_in = watch_in
        self.watch_err = watch_err
        os.set_blocking(watch_err, False)
        self.started_ns = started_ns
        self.concurrency = concurrency
        self.idle_timeout = idle_timeout
        self.extra_files = tuple(extra_files)
        self.log_ident = log_ident
        self.monitors = set()
        # SIGCHLD wakes the loop at once: a finished monitor is reaped now, not at the
        # next call, so the server leaves no zombie while it waits.
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    # -- the server ------------------------------------------------------------

    def detach_stdio(self):
        """Errors go to syslog from now on: the first caller's terminal is not ours."""
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)

    def log(self, priority, message):
        try:
            import syslog
        except ImportError:  # a python3 built without it: nowhere to say it
            return
        syslog.openlog(self.log_ident, syslog.LOG_PID | syslog.LOG_NDELAY, syslog.LOG_USER)
        syslog.syslog(priority, message)

    def serve(self):
        """Accept calls until the socket goes away; True in the executor of a call."""
        while True:
            self.reap()
            readable = self.wait()
            if readable is None:
                return False
            if self.watch_err in readable and self.watcher_says_quit():
                return False
            if self.listen.fileno() in readable:
                if self.changed_since_start():
                    return False  # not accepted: the waiting client starts a fresh server
                if self.accept_all():
                    return True

    def wait(self):
        """Block until there is work; None on the idle timeout."""
        timeout = None if self.idle_timeout is None or self.idle_timeout < 0 else self.idle_timeout
        while True:
            try:
                ready, _, _ = select.select([self.listen, self.watch_err, self.wake_r], [], [],
                                            timeout)
            except InterruptedError:
                continue
            if not ready:
                self.log(6, "idle timeout, quitting")
                return None
            fds = {r if isinstance(r, int) else r.fileno() for r in ready}
            if self.wake_r in fds:
                self.drain_wakeups()
                self.reap()
                fds.discard(self.wake_r)
                if not fds:
                    continue
            return fds

    def drain_wakeups(self):
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def reap(self):
        while self.monitors:
            full = 0 <= self.concurrency <= len(self.monitors)
            try:
                pid, status = os.waitpid(-1, 0 if full else os.WNOHANG)
            except ChildProcessError:
                self.monitors.clear()
                return
            if pid == 0:
                return
            self.monitors.discard(pid)
            if status and not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGPIPE):
                self.log(4, f"monitor {pid} ended with wait status {status:#x}")

    def watcher_says_quit(self):
        try:
            data = os.read(self.watch_err, 4096)
        except BlockingIOError:
            return False
        if data:
            self.log(3, "watcher: " + data.decode(errors="replace").strip())
        else:
            self.log(6, "lost socket (fresh start or cleanup?), quitting")
        return True

    def changed_since_start(self):
        """The script, a loaded module or an extra file changed: a fresh server is due."""
        files = [sys.argv[0], *self.extra_files]
        files += [getattr(m, "__file__", None) for m in list(sys.modules.values())]
        for path in files:
            if not path:
                continue
            try:
                if os.stat(path).st_mtime_ns > self.started_ns:
                    self.log(6, f"reloading; due to {path}")
                    return True
            except OSError:
                continue
        return False

    def accept_all(self):
        while True:
            try:
                conn, _ = self.listen.accept()
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as e:
                self.log(4, f"accept failed: {e}")
                return False
            conn.setblocking(True)
            fd = conn.detach()
            if self.fork_monitor(fd):
                return True

    def fork_monitor(self, conn_fd):
        """Fork the monitor of one call; True only in that call's executor."""
        pid = os.fork()
        if pid:
            self.monitors.add(pid)
            os.close(conn_fd)
            return False
        return Monitor(self, conn_fd).run()

    def close_server_fds(self):
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (self.watch_in, self.watch_err, self.wake_r, self.wake_w):
            os.close(fd)
        self.listen.close()


class Monitor:
    """One call: greet, take the caller's fds and request, run the executor, report."""

    def __init__(self, server, conn_fd):
        self.server = server
        self.conn = socket.socket(fileno=conn_fd)

    def run(self):
        try:
            self.server.close_server_fds()
            os.setpgrp()
            request = self.receive()
            if request is None:
                os._exit(0)  # the client went away before its request: nothing to do
            fds, env, argv = request
            return self.execute(fds, env, argv)
        except SystemExit:
            raise
        except BaseException as e:  # noqa: BLE001 - a monitor must end in _exit, always
            try:
                os.write(2, f"prefork-interp monitor: {e}\n".encode())
            finally:
                os._exit(127)

    def receive(self):
        self.conn.sendall(GREETING)
        byte = self.conn.recv(1)
        if not byte:
            return None
        if byte != b"\0":
            raise ProtocolError(f"bad signalling byte {byte!r}")
        fds = []
        for _ in range(3):
            _, received, _, _ = socket.recv_fds(self.conn, 1, 1)
            if not received:
                for fd in fds:
                    os.close(fd)
                return None
            fds.extend(received)
        header = self.read_exactly(4)
        payload = header and self.read_exactly(struct.unpack(">I", header)[0])
        if payload is None:
            return None
        env, argv = decode_request(payload)
        return fds, env, argv

    def read_exactly(self, n):
        chunks, left = [], n
        while left:
            chunk = self.conn.recv(min(left, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def execute(self, fds, env, argv):
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(done_r)
            become_executor(fds, env, argv, self.conn)
            return True  # done_w stays open until this process is gone
        os.close(done_w)
        for fd in fds:
            os.close(fd)
        self.wait_for_end(done_r)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.kill(0, signal.SIGINT)  # the client is gone or the call is over: stop the group
        _, status = os.waitpid(pid, 0)
        try:
            self.conn.sendall(struct.pack(">I", status))
        except (BrokenPipeError, ConnectionResetError):
            pass
        os._exit(0)

    def wait_for_end(self, done_r):
        """Until the executor is gone (its pipe end closed) or the client hung up."""
        while True:
            try:
                ready, _, _ = select.select([self.conn, done_r], [], [])
            except InterruptedError:
                continue
            if ready:
                return


def become_executor(fds, env, argv, conn):
    """In the executor: the caller's fds, environment and argv; default SIGINT/SIGPIPE."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)  # inheritable: programs the call runs get them as 0-2
    for fd in fds:
        if fd > 2 and fd not in fds[fds.index(fd) + 1:]:
            os.close(fd)
    conn.close()
    os.environb.clear()
    for name, value in env:
        os.environb[name] = value
    sys.argv = [os.fsdecode(a) for a in argv[1:]]
    # The protocol ends calls with SIGINT and relies on SIGPIPE; Python changed both.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=os.isatty(stream.fileno()))
