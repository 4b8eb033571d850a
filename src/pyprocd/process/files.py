"""Files the daemon opens or writes on behalf of instances, done safely.

The daemon runs as root and the paths come from service configs: a `pidfile` may
sit in a directory the instance's (unprivileged) user controls, and any path may
name a FIFO or a device. So:

* reading (`file`, `capabilities`, `seccomp`, a daemonising service's pidfile) opens
  non-blocking and refuses anything but a regular file, with a size cap: a FIFO never
  blocks the daemon's one loop and /dev/zero never fills its memory;
* writing a pidfile walks to its directory without following a symlink that sits in
  a directory a non-root user can write, creates an unpredictable temp file there with
  O_EXCL|O_NOFOLLOW and renames it over the pidfile: a planted symlink or hard link is
  replaced, never written through.
"""

import errno
import os
import stat

READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DIGEST_SIZE = 64 << 20   # a `file` is a config file: far below this
MAX_CONFIG_SIZE = 1 << 20    # capabilities / seccomp JSON
CHUNK = 64 << 10
ZERO_DIGEST = "0" * 32       # what a missing or unreadable `file` compares as


class UnsafePath(OSError):
    """A path the daemon refuses to use; str() is the reason."""

    def __init__(self, path, reason):
        super().__init__(errno.EPERM, reason, path)
        self.reason = reason

    def __str__(self):
        return f"{self.filename}: {self.reason}"


def open_regular(path, follow=True):
    """An fd for reading `path`, which must be a regular file. Never blocks on a FIFO
    (O_NONBLOCK); follow=False refuses a symlink as the last component. Raises OSError
    (UnsafePath for a FIFO, device, socket or directory)."""
    fd = os.open(path, READ_FLAGS | (0 if follow else os.O_NOFOLLOW))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafePath(path, f"not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)  # a regular file: reads never wait anyway
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path, limit=MAX_CONFIG_SIZE, follow=True):
    """The whole content of a regular file of at most `limit` bytes. Raises OSError
    (UnsafePath when it is not a regular file or is larger)."""
    fd = open_regular(path, follow)
    try:
        data = os.read(fd, limit + 1)
        while len(data) <= limit:
            more = os.read(fd, limit + 1 - len(data))
            if not more:
                return data
            data += more
        raise UnsafePath(path, f"larger than {limit} bytes")
    finally:
        os.close(fd)


def _kind(mode):
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a file"


# -- the `file` key's digest -----------------------------------------------------------

def _md5():
    """An MD5 object from the small C module alone (hashlib would stay in the daemon's
    memory for good, ~3.7 MB with OpenSSL). OpenWrt's python3-light has _md5; a Python
    built without the builtin hashes falls back to hashlib."""
    try:
        import _md5

        return _md5.md5()
    except ImportError:
        import hashlib

        return hashlib.md5()


def file_digest(path, limit=None):
    """procd's `file` fact: the hex MD5 of a regular file, read in chunks.

    A missing or unreadable file compares as ZERO_DIGEST (it may appear later and then
    restarts the instance, as in procd). A FIFO, device, directory or a file over
    `limit` bytes raises UnsafePath: the instance is refused with that reason instead
    of the daemon blocking or reading without end.
    """
    limit = MAX_DIGEST_SIZE if limit is None else limit
    try:
        fd = open_regular(path)
    except UnsafePath:
        raise
    except (OSError, ValueError):
        return ZERO_DIGEST
    try:
        if os.fstat(fd).st_size > limit:   # refused before reading it (it may still grow)
            raise UnsafePath(path, f"larger than {limit} bytes")
        digest = _md5()
        total = 0
        while True:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                return digest.hexdigest()
            total += len(chunk)
            if total > limit:
                raise UnsafePath(path, f"larger than {limit} bytes")
            digest.update(chunk)
    except UnsafePath:
        raise
    except OSError:
        return ZERO_DIGEST
    finally:
        os.close(fd)


# -- pidfiles ---------------------------------------------------------------------------

def _others_may_write(st):
    """True when a user other than root can change the directory's entries."""
    mode = st.st_mode
    return bool(mode & stat.S_IWOTH or (mode & stat.S_IWGRP and st.st_gid != 0)
                or (mode & stat.S_IWUSR and st.st_uid != 0))


def open_directory(path):
    """An fd for directory `path`, walked one component at a time: a symlink is
    followed only where root alone controls it (it sits in a directory no other user
    can write), so a service cannot redirect root's writes by swapping a directory of
    its own for a symlink. Raises OSError (UnsafePath for a refused symlink)."""
    path = os.path.abspath(path)
    fd = os.open("/", DIR_FLAGS)
    try:
        for part in [p for p in path.split("/") if p]:
            try:
                child = os.open(part, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                if not stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                    raise
                if _others_may_write(os.fstat(fd)):
                    raise UnsafePath(path, f"'{part}' is a symlink in a directory "
                                           "other users can write") from None
                child = os.open(part, DIR_FLAGS, dir_fd=fd)  # root's own symlink
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_pidfile(path, pid):
    """Write "<pid>\\n" to `path` atomically: readers never see a half-written file,
    and nothing already at `path` (a symlink, a hard link) is written through.
    Raises OSError."""
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = open_directory(directory)
    try:
        tmp, fd = _create_temp(dir_fd, name)
        try:
            try:
                os.write(fd, f"{pid}\n".encode())
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink_quietly(tmp, dir_fd)
            raise
    finally:
        os.close(dir_fd)


def _create_temp(dir_fd, name):
    for _attempt in range(8):
        tmp = f".{name}.{os.urandom(6).hex()}.tmp"
        try:
            return tmp, os.open(tmp, CREATE_FLAGS, 0o644, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "cannot create a temporary pidfile")


def remove_pidfile(path):
    """Remove the pidfile (a symlink in its place is removed, not its target).
    A missing file is fine; raises OSError otherwise."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        dir_fd = open_directory(directory)
    except FileNotFoundError:
        return
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dir_fd)


def _unlink_quietly(name, dir_fd):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def read_pidfile(path):
    """The pid in a pidfile, or None if missing, empty, not a positive number, or not a
    regular file (a FIFO put in its place must not block the daemon)."""
    try:
        fd = open_regular(path, follow=False)
    except OSError:
        return None
    try:
        text = os.read(fd, 64)
    except OSError:
        return None
    finally:
        os.close(fd)
    words = text.split()
    try:
        pid = int(words[0]) if words else 0
    except ValueError:
        return None
    return pid if pid > 0 else None
