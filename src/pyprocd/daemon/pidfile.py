"""The daemon's own pidfile, done the Open vSwitch way.

* Created atomically: the pid is written to `<file>.tmp`, which is locked
  first, then hard-linked (or renamed, with `overwrite`) to `<file>`, so a
  reader never sees an empty or half-written file.
* An fcntl write lock is held on it for the daemon's whole life; the kernel
  drops it when the process dies, however it dies. "Locked" therefore means
  "a live daemon owns it", and the lock holder's pid comes from the kernel.
* A stale file (unlocked) is removed only by a process that first takes its
  lock and checks that the path still names the same file: two starters
  racing on a stale file cannot delete each other's fresh pidfile.
* The lock survives exec (the fd is kept open and made inheritable for a
  live re-exec), but not fork: only the process that created it owns it.

Only os, fcntl, errno and struct are imported: the monitor process stays small.
"""

import errno
import fcntl
import os
import struct

DEFAULT_PIDFILE = "/var/run/pyprocd.pid"

# struct flock: short l_type, short l_whence, off_t l_start, off_t l_len,
# pid_t l_pid. CPython is built with 64-bit off_t on 32-bit Linux (and musl
# always has it); native '@' alignment matches the C compiler's padding on
# every ABI (i386 packs the int64s at 4, ARM/MIPS at 8). Only used to read the
# holder's pid; the content of the file is the fallback.
_FLOCK = "@hhqqi"
_FLOCK_SIZE = struct.calcsize(_FLOCK) + 8  # room for tail padding


class PidfileError(Exception):
    """The pidfile could not be taken; `pid` is the running owner, if any."""

    def __init__(self, message, pid=None):
        super().__init__(message)
        self.pid = pid


def _lock_holder(fd):
    """pid holding a write-conflicting lock on fd, 0 if unlocked, -1 if unknown."""
    request = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    request += b"\0" * (_FLOCK_SIZE - len(request))
    try:
        reply = fcntl.fcntl(fd, fcntl.F_GETLK, request)
    except OSError:
        return -1
    l_type, _whence, _start, _len, l_pid = struct.unpack_from(_FLOCK, reply)
    if l_type == fcntl.F_UNLCK:
        return 0
    return l_pid if l_pid > 0 else -1


def _try_lock(fd):
    """Take the write lock on fd without waiting; False if someone holds it."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _read_pid(fd):
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (ValueError, IndexError, OSError):
        return None


def _same_file(fd, path):
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def read_pidfile(path):
    """pid of the live daemon owning `path`, or None (absent or stale)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        holder = _lock_holder(fd)
        if holder == 0:
            return None
        return holder if holder > 0 else _read_pid(fd)
    finally:
        # Closing an fd drops *our* locks on the file: harmless here, we hold
        # none unless path is our own pidfile, which we never read this way.
        os.close(fd)


def _remove_if_stale(path):
    """Delete path if nobody holds its lock; raise PidfileError if someone does."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not _try_lock(fd):
            holder = _lock_holder(fd)
            pid = holder if holder > 0 else _read_pid(fd)
            raise PidfileError(f"{path}: pyprocd is already running (pid {pid})", pid)
        # We hold the lock: we are the only one allowed to delete it, and only
        # if the path still names the file we locked.
        if _same_file(fd, path):
            os.unlink(path)
    finally:
        os.close(fd)


class Pidfile:
    """A created, locked pidfile; `remove()` it on clean exit."""

    def __init__(self, path, fd):
        self.path = path
        self.fd = fd

    @classmethod
    def create(cls, path=DEFAULT_PIDFILE, overwrite=False, pid=None):
        """Create and lock `path` for this process. Raises PidfileError."""
        pid = os.getpid() if pid is None else pid
        path = os.path.abspath(path)
        if overwrite:
            tmp = f"{path}.tmp{os.getpid()}"
        else:
            _remove_if_stale(path)
            # A shared temporary name doubles as a lock between concurrent
            # starters: only one can hold it at a time.
            tmp = f"{path}.tmp"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not _try_lock(fd):
                raise PidfileError(f"{tmp}: another pyprocd is starting")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid}\n".encode(), 0)
            if overwrite:
                os.rename(tmp, path)
            else:
                cls._publish(tmp, path)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    @staticmethod
    def _publish(tmp, path):
        try:
            os.link(tmp, path)
        except FileExistsError:
            os.unlink(tmp)
            # Someone won the race between our stale check and now.
            raise PidfileError(f"{path}: pyprocd is already running "
                               f"(pid {read_pidfile(path)})", read_pidfile(path)) from None
        os.unlink(tmp)

    @classmethod
    def adopt(cls, path, fd):
        """Take over an inherited, still locked pidfile fd (after a re-exec)."""
        os.set_inheritable(fd, False)
        return cls(path, fd)

    def keep_across_exec(self):
        os.set_inheritable(self.fd, True)

    def remove(self):
        """Unlink (still holding the lock, so nobody else can have replaced it
        behind our back unless they overwrote it) and release."""
        if self.fd is None:
            return
        try:
            if _same_file(self.fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
