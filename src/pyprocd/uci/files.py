"""Opening UCI's files: who may have written them, and their locks.

libuci reads every `<dir>/<pkg>` of its delta path (default /tmp/.uci, a
directory any local user can create first) and the `/var/run/uci/<pkg>`
override, whoever owns them. For a root process that turns "a user can
create a directory in /tmp" into "a user can set root's service commands".
So when the process is root, a directory or file that is not owned by root,
is writable by group or others, is a symlink or is not a regular file is
refused: the caller skips it and gets a warning to log. The checks are made
on the opened descriptors (O_NOFOLLOW, fstat), not on names, so nothing can
be swapped in between. Unprivileged processes keep libuci's behaviour.

Locks are libuci's advisory flock()s. LOCK_BLOCK waits as libuci does; the
daemon uses LOCK_TRY (ConfigLocked when another process holds an exclusive
lock, so that it can retry later instead of freezing its event loop) and,
as a last resort, LOCK_NONE.
"""

import errno
import fcntl
import os
import stat

from .model import ERR_IO, UciError

LOCK_BLOCK, LOCK_TRY, LOCK_NONE = "block", "try", "none"



class ConfigLocked(UciError):
    """LOCK_TRY: another process holds an exclusive lock on `path`."""

    def __init__(self, path):
        super().__init__(ERR_IO)
        self.path = path


class Refused(Exception):
    """A root process must not trust this file; the text says why."""


def root_only():
    """Whether ownership checks apply (the process is root)."""
    return os.geteuid() == 0


def _check_trusted(st, what):
    if stat.S_ISLNK(st.st_mode):
        raise Refused(f"{what} is a symlink")
    if st.st_uid != 0:
        raise Refused(f"{what} is owned by uid {st.st_uid}, not root")
    if st.st_mode & 0o022:
        raise Refused(f"{what} is writable by group or others")


def _open_dir(directory):
    """A descriptor of a trusted directory; FileNotFoundError if it is absent."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(directory):
            raise Refused(f"directory {directory} is a symlink") from None
        raise  # absent, or not a directory: as for anyone
    try:
        _check_trusted(os.fstat(fd), f"directory {directory}")
    except Refused:
        os.close(fd)
        raise
    return fd


def open_checked(path, flags=os.O_RDONLY, mode=0o600, trusted=False):
    """os.open(path) of a regular file; with trusted=True also the root checks.

    Raises Refused (with the reason) or OSError (FileNotFoundError when absent).
    """
    flags |= os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO planted here must not block us
    if trusted:
        directory, name = os.path.split(path)
        dir_fd = _open_dir(directory)
        try:
            try:
                fd = os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise Refused(f"{path} is a symlink") from None
                raise
        finally:
            os.close(dir_fd)
    else:
        fd = os.open(path, flags, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{path} is not a regular file")
        if trusted:
            _check_trusted(st, path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock(fd, path, exclusive=False, how=LOCK_BLOCK):
    if how == LOCK_NONE:
        return
    op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    if how == LOCK_TRY:
        op |= fcntl.LOCK_NB
    try:
        fcntl.flock(fd, op)
    except BlockingIOError:
        raise ConfigLocked(path) from None


def read_all(fd, path, how=LOCK_BLOCK):
    """Lock (shared) and read the whole file; the descriptor is closed."""
    with os.fdopen(fd, "rb") as f:
        lock(f.fileno(), path, how=how)
        return f.read()
