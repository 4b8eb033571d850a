"""A small single-threaded event loop: file descriptors, timers, signals, child exits.

Why not asyncio: importing it costs about 9 MB of RSS, more than the rest of
the daemon; on a 64 MB router that matters. This loop is ~200 lines over
epoll (`select.epoll` itself: `selectors` would bring `collections` and
`math` for the daemon's life), and it never wakes up unless something happened: no
periodic tick, the poll timeout is the next timer or infinity.

Child exits: every watched child gets a pidfd (Linux >= 5.3), which becomes
readable when the process exits, also for processes that are not our
children (needed to take back instances after a daemon restart). SIGCHLD is
handled too, because as a subreaper we also inherit orphaned grandchildren
that must be reaped; both paths end in one reaper, so each exit is
dispatched exactly once and no zombie is left.
"""

import _signal as signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)
import itertools
import os
import select
import sys
import time

try:  # the C module: `heapq` is the same plus Python the loop never calls
    from _heapq import heapify, heappop, heappush
except ImportError:  # an interpreter built without it (heapq itself allows that)
    from heapq import heapify, heappop, heappush

# epoll_wait takes a C int of milliseconds (about 24.8 days): the loop never
# waits longer than this at once; a timer further out just costs one wake-up
# per MAX_WAIT, and a delay is capped so that its deadline stays a finite float.
MAX_WAIT = 86400.0 * 24
MAX_DELAY = 86400.0 * 365 * 100


class Timer:
    """A scheduled callback; `cancel()` it to drop it."""

    __slots__ = ("when", "seq", "callback", "args", "cancelled", "_loop")

    def __init__(self, loop, when, seq, callback, args):
        self._loop = loop
        self.when = when
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def __lt__(self, other):
        return (self.when, self.seq) < (other.when, other.seq)

    def cancel(self):
        if not self.cancelled:
            self.cancelled = True
            self._loop._timer_cancelled()

    def remaining(self):
        return max(0.0, self.when - self._loop.time())


def _ignore_signal(signum, frame):
    # The real work happens when the loop reads the wakeup fd; a Python-level
    # handler must exist so that the C handler writes the signal number there.
    pass


class Loop:
    def __init__(self, on_orphan_reaped=None):
        self._epoll = select.epoll()
        self._fds = {}  # fd -> (reader, writer) callbacks, either may be None
        self._timers = []
        self._cancelled = 0
        self._seq = itertools.count()
        self._stopping = False
        self._children = {}  # pid -> callback(pid, status or None)
        self._pidfds = {}  # pid -> pidfd
        self._signal_handlers = {}  # signum -> callback(signum)
        self._wakeup_r = self._wakeup_w = None
        self._sigchld_installed = False
        # Called with (pid, status) for reaped processes nobody watched
        # (orphaned grandchildren re-parented to us as subreaper).
        self.on_orphan_reaped = on_orphan_reaped
        self.strict = False

    # -- time and timers ---------------------------------------------------

    @staticmethod
    def time():
        return time.monotonic()

    def call_later(self, delay, callback, *args):
        delay = max(0.0, min(delay, MAX_DELAY))
        timer = Timer(self, self.time() + delay, next(self._seq), callback, args)
        heappush(self._timers, timer)
        return timer

    def call_soon(self, callback, *args):
        return self.call_later(0, callback, *args)

    def _timer_cancelled(self):
        self._cancelled += 1
        # Watchdog pets re-arm timers all the time: drop dead entries now and
        # then so the heap does not grow without bound.
        if self._cancelled > 64 and self._cancelled > len(self._timers) // 2:
            self._timers = [t for t in self._timers if not t.cancelled]
            heapify(self._timers)
            self._cancelled = 0

    # -- file descriptors --------------------------------------------------

    def _update(self, fd, reader, writer):
        handlers = self._fds.get(fd)
        if reader is None and writer is None:
            if handlers is not None:
                del self._fds[fd]
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass  # already closed: the kernel dropped it with the file
            return
        events = (select.EPOLLIN if reader else 0) | (select.EPOLLOUT if writer else 0)
        if handlers is None:
            self._epoll.register(fd, events)
        elif events != (select.EPOLLIN if handlers[0] else 0) | (select.EPOLLOUT if handlers[1] else 0):
            try:
                self._epoll.modify(fd, events)
            except OSError:
                del self._fds[fd]  # closed behind our back: forget it, as unregister would
                raise
        self._fds[fd] = (reader, writer)

    def _handlers(self, fd):
        return self._fds.get(fd, (None, None))

    def add_reader(self, fd, callback):
        """callback() is called whenever fd is readable."""
        self._update(fd, callback, self._handlers(fd)[1])

    def remove_reader(self, fd):
        self._update(fd, None, self._handlers(fd)[1])

    def add_writer(self, fd, callback):
        self._update(fd, self._handlers(fd)[0], callback)

    def remove_writer(self, fd):
        self._update(fd, self._handlers(fd)[0], None)

    # -- signals -------------------------------------------------------------

    def _ensure_wakeup_fd(self):
        if self._wakeup_r is not None:
            return
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self._wakeup_r, self._wakeup_w = r, w
        self.add_reader(r, self._read_signals)

    def add_signal_handler(self, signum, callback):
        """callback(signum) runs in the loop (not in signal context)."""
        self._ensure_wakeup_fd()
        self._signal_handlers[signum] = callback
        signal.signal(signum, _ignore_signal)

    def remove_signal_handler(self, signum):
        if self._signal_handlers.pop(signum, None) is not None:
            signal.signal(signum, signal.SIG_DFL)

    def drain_signals(self):
        """Signal numbers caught but not dispatched yet (read off the wakeup fd).

        For a re-exec: they would be lost with the fd, so the caller re-raises
        them to keep them pending for the new image.
        """
        data = b""
        while self._wakeup_r is not None:
            try:
                chunk = os.read(self._wakeup_r, 4096)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                break
            data += chunk
        return sorted(set(data))

    def _read_signals(self):
        try:
            data = os.read(self._wakeup_r, 4096)
        except (BlockingIOError, InterruptedError):
            return
        for signum in set(data):
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                handler(signum)

    # -- child processes ---------------------------------------------------

    def watch_child(self, pid, callback):
        """callback(pid, status) once pid has exited.

        status is the raw wait status, or None when pid is not our child
        (adopted after a restart) and its status cannot be collected.
        """
        self._children[pid] = callback
        if not self._sigchld_installed:
            self._install_sigchld()
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            # Already gone and reaped elsewhere, or not our child and dead.
            self.call_soon(self._reap_one, pid)
            return
        except (OSError, AttributeError):
            return  # no pidfd: SIGCHLD alone will tell us
        self._pidfds[pid] = fd
        self.add_reader(fd, lambda: self._reap_one(pid))

    def unwatch_child(self, pid):
        self._children.pop(pid, None)
        self._close_pidfd(pid)

    def _install_sigchld(self):
        try:
            self.add_signal_handler(signal.SIGCHLD, lambda signum: self.reap_children())
            self._sigchld_installed = True
        except ValueError:
            pass  # not the main thread: pidfds only

    def _close_pidfd(self, pid):
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            self.remove_reader(fd)
            os.close(fd)

    def _dispatch_exit(self, pid, status):
        self._close_pidfd(pid)
        callback = self._children.pop(pid, None)
        if callback is not None:
            callback(pid, status)
        elif self.on_orphan_reaped is not None:
            self.on_orphan_reaped(pid, status)

    def _reap_one(self, pid):
        if pid not in self._children:
            return
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Not our child (adopted): the pidfd said it exited, status unknown.
            self._dispatch_exit(pid, None)
            return
        if got == pid:
            self._dispatch_exit(pid, status)

    def reap_children(self):
        """Collect every exited child (ours and re-parented orphans)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            self._dispatch_exit(pid, status)

    # -- running -----------------------------------------------------------

    def stop(self):
        self._stopping = True

    def _next_timeout(self):
        while self._timers and self._timers[0].cancelled:
            heappop(self._timers)
            self._cancelled = max(0, self._cancelled - 1)
        if not self._timers:
            return None
        return max(0.0, self._timers[0].when - self.time())

    def _run_timers(self):
        now = self.time()
        while self._timers and self._timers[0].when <= now:
            timer = heappop(self._timers)
            if timer.cancelled:
                self._cancelled = max(0, self._cancelled - 1)
                continue
            timer.cancelled = True  # fired: cancel() is now a no-op
            self._call(timer.callback, *timer.args)

    def run_once(self, timeout=None):
        """Wait for events (at most `timeout` s, None = as needed) and dispatch them."""
        next_timer = self._next_timeout()
        if timeout is None:
            timeout = next_timer
        elif next_timer is not None:
            timeout = min(timeout, next_timer)
        if timeout is not None:
            timeout = min(timeout, MAX_WAIT)
        try:
            events = self._epoll.poll(-1 if timeout is None else timeout, max(len(self._fds), 1))
        except InterruptedError:
            events = []
        for fd, mask in events:
            # Looked up now, not at poll time: an earlier callback of this
            # round may have removed or replaced them. An error or hang-up
            # counts as both readable and writable (as with selectors), so
            # the handler sees it on its next read or write.
            reader = self._handlers(fd)[0]
            if mask & ~select.EPOLLOUT and reader is not None:
                self._call(reader)
            writer = self._handlers(fd)[1]
            if mask & ~select.EPOLLIN and writer is not None:
                self._call(writer)
        self._run_timers()

    def _call(self, callback, *args):
        # A bug in one handler must not take the supervisor (and with it
        # every service) down: log it and go on. Tests set `strict` to see it.
        try:
            callback(*args)
        except Exception:
            if self.strict:
                raise
            log_exception(getattr(callback, "__qualname__", repr(callback)))

    def run(self):
        self._stopping = False
        while not self._stopping:
            self.run_once()

    def run_until(self, condition, timeout):
        """Run until condition() is true or `timeout` s passed; returns condition()."""
        deadline = self.time() + timeout
        while not condition():
            left = deadline - self.time()
            if left <= 0:
                return condition()
            self.run_once(min(left, 0.5))
        return True

    def close(self):
        for pid in list(self._pidfds):
            self._close_pidfd(pid)
        for signum in list(self._signal_handlers):
            self.remove_signal_handler(signum)
        if self._wakeup_r is not None:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            self.remove_reader(self._wakeup_r)
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
            self._wakeup_r = self._wakeup_w = None
        self._fds.clear()
        self._epoll.close()


def log_exception(where):
    """Print the current exception without taking the loop down."""
    import traceback

    print(f"pyprocd: unexpected error in {where}:", file=sys.stderr)
    traceback.print_exc()
