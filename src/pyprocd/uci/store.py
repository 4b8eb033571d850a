"""Loading packages with their deltas, saving changes, commit and revert.

File formats, directory rules and locking follow libuci (see the project's
uci-format spec): deltas are appended to `<savedir>/<pkg>` under an exclusive
flock, every directory of the delta path is replayed on load, and commit
rewrites the config file atomically (mkstemp + fsync + rename) while holding
an exclusive flock on it, then truncates the savedir delta file.
"""

import fcntl
import os
import stat

from .files import LOCK_BLOCK, Refused, lock, open_checked, read_all, root_only
from .model import (
    ERR_INVAL,
    ERR_IO,
    ERR_NOTFOUND,
    Package,
    UciError,
    quote,
    valid_name,
    valid_package,
    valid_value,
)
from .parser import parse_package, tokenize_single

DEFAULT_CONFDIR = "/etc/config"
DEFAULT_CONF2DIR = "/var/run/uci"
DEFAULT_SAVEDIR = "/tmp/.uci"

DELTA_PREFIXES = "+-@^|~"


def decode(data):
    return data.decode("utf-8", "surrogateescape")


def encode(text):
    return text.encode("utf-8", "surrogateescape")


class Delta:
    """One change: cmd is '' (set) or one of + - @ ^ | ~."""

    __slots__ = ("cmd", "option", "section", "value")

    def __init__(self, cmd, section, option=None, value=None):
        self.cmd = cmd
        self.section = section
        self.option = option
        self.value = value

    def line(self, pkg_name):
        text = f"{self.cmd}{pkg_name}.{self.section}"
        if self.option is not None:
            text += "." + self.option
        if self.value is not None:
            text += "=" + quote(self.value)
        return text + "\n"

    def change_text(self, pkg_name):
        """The `uci changes` form of this delta."""
        path = f"{pkg_name}.{self.section}"
        if self.option is not None:
            path += "." + self.option
        if self.cmd == "-":
            return f"-{path}\n"
        op = {"|": "+=", "~": "-="}.get(self.cmd, "=")
        return "{}{}{}\n".format(path, op, quote(self.value if self.value is not None else ""))


def parse_delta_token(token, pkg_name):
    """A delta token -> Delta, or None if libuci would reject the line."""
    if not token:
        return None
    cmd = token[0] if token[0] in DELTA_PREFIXES else ""
    body = token[len(cmd):]
    value = None
    if "=" in body:
        body, value = body.split("=", 1)
    parts = body.split(".")
    if len(parts) > 3 or len(parts) < 2:
        return None
    pkg, section = parts[0], parts[1]
    option = parts[2] if len(parts) == 3 else None
    if pkg != pkg_name or not valid_package(pkg) or not valid_name(section):
        return None
    if option is not None and not valid_name(option):
        return None
    if value is not None and not valid_value(value):
        return None
    if value is None and cmd != "-":
        return None
    if cmd == "^" and option is not None:
        return None
    if cmd == "@" and not valid_name(value):
        return None
    if cmd in "|~" and cmd and option is None:
        return None
    return Delta(cmd, section, option, value)


def parse_delta_text(data, pkg_name):
    deltas = []
    for token in tokenize_single(data):
        delta = parse_delta_token(token, pkg_name) if token is not None else None
        if delta is not None:
            deltas.append(delta)
    return deltas


def apply_delta(pkg, delta):
    """Replay one delta; returns True when it applied."""
    # Only uncommitted changes need the edit operations: a daemon that just
    # reads its config never keeps them in memory.
    from . import ops

    try:
        if delta.cmd == "":
            ops.set_value(pkg, delta.section, delta.option, delta.value)
        elif delta.cmd == "+":
            ops.set_value(pkg, delta.section, None, delta.value)
            sec = pkg.section(delta.section)
            if sec is None:
                return False
            sec.anonymous = True
        elif delta.cmd == "-":
            index = None
            if delta.value is not None:
                index = ops.parse_index(delta.value)
                if index is None:
                    return False
            ops.delete(pkg, delta.section, delta.option, index)
        elif delta.cmd == "@":
            ops.rename(pkg, delta.section, delta.option, delta.value)
        elif delta.cmd == "^":
            ops.reorder(pkg, delta.section, delta.value)
        elif delta.cmd == "|":
            ops.add_list(pkg, delta.section, delta.option, delta.value)
        elif delta.cmd == "~":
            ops.del_list(pkg, delta.section, delta.option, delta.value)
    except UciError:
        return False
    return True


def _mode_of(path, default):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return default


class Store:
    """A libuci context: directories, flags, and the operations on packages."""

    def __init__(self, confdir=DEFAULT_CONFDIR, conf2dir=DEFAULT_CONF2DIR,
                 savedir=DEFAULT_SAVEDIR, strict=True, on_parse_error=None, warn=None,
                 lock=LOCK_BLOCK, trusted=None):
        """warn(message): told about files refused (see uci.files); lock: how to
        take the shared locks for reading (files.LOCK_*); trusted: apply the
        root ownership checks (default: when the process is root)."""
        self.confdir = confdir
        self.conf2dir = conf2dir
        self.savedir = savedir
        self.delta_path = [savedir]
        self.strict = strict
        self.on_parse_error = on_parse_error
        self.commit_disabled = False  # -P: commit is a silent no-op
        self.warn = warn or (lambda message: None)
        self.lock = lock
        self.trusted = root_only() if trusted is None else trusted

    # -- directories ---------------------------------------------------------

    def set_savedir(self, path):
        """-t / -P: savedir, moved to the end of the delta path."""
        if path in self.delta_path:
            self.delta_path.remove(path)
        self.delta_path.append(path)
        self.savedir = path

    def add_delta_path(self, path):
        """-p: inserted before the last element (the savedir)."""
        if path in self.delta_path:
            return
        self.delta_path.insert(max(0, len(self.delta_path) - 1), path)

    def list_configs(self):
        try:
            entries = sorted(os.listdir(self.confdir))
        except OSError:
            raise UciError(ERR_NOTFOUND) from None
        names = []
        for name in entries:
            if name.startswith(".") or "." in name or not valid_package(name):
                continue
            if os.path.isdir(os.path.join(self.confdir, name)):
                continue
            names.append(name)
        if not names:
            raise UciError(ERR_NOTFOUND)
        return names

    def _locate(self, name):
        """-> (file path, package name, has_delta, from_conf2)."""
        if name.startswith(("/", "./")):
            return name, name.rsplit("/", 1)[-1], False, False
        if name.startswith(".") or not valid_package(name):
            raise UciError(ERR_NOTFOUND)
        if self.conf2dir:
            path = os.path.join(self.conf2dir, name)
            if os.path.isfile(path):
                return path, name, True, True
        return os.path.join(self.confdir, name), name, True, False

    # -- loading -------------------------------------------------------------

    def load(self, name):
        """Parse the config file and replay all delta files.

        The package gets `changes` (every parsed delta line, for `uci changes`),
        `applied` (how many applied) and `pending` (new, unsaved deltas).
        """
        path, pkg_name, has_delta, from_conf2 = self._locate(name)
        data = None
        if from_conf2:
            # the override replaces the config file: only if root wrote it
            data = self._read_untrusted(path)
            if data is None:
                path, from_conf2 = os.path.join(self.confdir, pkg_name), False
        if data is None:
            try:
                data = read_all(open_checked(path), path, self.lock)
            except (OSError, Refused):
                raise UciError(ERR_NOTFOUND) from None
        return self._build(data, pkg_name, path, has_delta, from_conf2)

    def _read_untrusted(self, path):
        """Contents of a file others could have planted; None if absent or refused."""
        try:
            return read_all(open_checked(path, trusted=self.trusted), path, self.lock)
        except Refused as e:
            self.warn(f"ignoring {path}: {e}")
        except OSError:
            pass
        return None

    def _build(self, data, pkg_name, path, has_delta, from_conf2):
        pkg = parse_package(data, pkg_name, self.strict, self.on_parse_error)
        pkg.path = path
        pkg.has_delta = has_delta
        pkg.from_conf2 = from_conf2
        pkg.changes = []
        pkg.applied = 0
        pkg.pending = []
        if has_delta:
            for directory in self.delta_path:
                self._replay(pkg, os.path.join(directory, pkg_name))
        return pkg

    def _replay(self, pkg, delta_file):
        data = self._read_untrusted(delta_file)
        if data is None:
            return
        for delta in parse_delta_text(data, pkg.name):
            pkg.changes.append(delta)
            if apply_delta(pkg, delta):
                pkg.applied += 1

    # -- saving deltas -------------------------------------------------------

    def _ensure_savedir(self):
        if os.path.isdir(self.savedir):
            return
        if os.path.exists(self.savedir):
            raise UciError(ERR_IO)
        try:
            os.mkdir(self.savedir, _mode_of(self.confdir, 0o700))
        except FileExistsError:
            pass
        except OSError:
            raise UciError(ERR_IO) from None

    def _open_in_savedir(self, name, flags, mode=0o600):
        path = os.path.join(self.savedir, name)
        try:
            return open_checked(path, flags, mode, trusted=self.trusted)
        except Refused as e:
            self.warn(f"not writing {path}: {e}")
            raise UciError(ERR_IO) from None
        except OSError:
            raise UciError(ERR_IO) from None

    def _open_delta(self, pkg):
        self._ensure_savedir()
        mode = _mode_of(os.path.join(self.confdir, pkg.name), 0o600)
        fd = self._open_in_savedir(pkg.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        lock(fd, os.path.join(self.savedir, pkg.name), exclusive=True)
        return fd

    def save(self, pkg):
        """Append the package's pending deltas to `<savedir>/<pkg>`."""
        if not pkg.has_delta:
            self._write_config(pkg)
            pkg.pending = []
            return
        if not pkg.pending:
            return
        fd = self._open_delta(pkg)
        try:
            data = "".join(d.line(pkg.name) for d in pkg.pending)
            os.write(fd, encode(data))
        finally:
            os.close(fd)
        pkg.pending = []

    # -- commit ----------------------------------------------------------------

    def commit(self, pkg):
        """libuci `uci_commit` (no overwrite): see module docstring."""
        if self.commit_disabled:
            return
        if not pkg.has_delta:
            self.save(pkg)
            return
        mode = _mode_of(os.path.join(self.confdir, pkg.name), 0o600)
        try:
            fd = os.open(pkg.path, os.O_RDWR | os.O_CREAT, mode)
        except OSError:
            raise UciError(ERR_IO) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.save(pkg)
            with os.fdopen(os.dup(fd), "rb") as f:
                f.seek(0)
                data = f.read()
            fresh = self._build(data, pkg.name, pkg.path, True, pkg.from_conf2)
            if fresh.applied == 0:
                return
            self._truncate_delta(pkg.name)
            self._write_config(fresh)
        finally:
            os.close(fd)

    def _truncate_delta(self, name):
        try:
            fd = self._open_in_savedir(name, os.O_WRONLY)
        except UciError:
            return
        try:
            lock(fd, name, exclusive=True)
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def _write_config(self, pkg, text=None):
        """Atomically replace the package file with its export."""
        if text is None:
            text = pkg.export(header=False)
        import tempfile  # only writers need it (it pulls in random, hashlib)

        directory = os.path.dirname(pkg.path) or "."
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{pkg.name}.uci-", dir=directory)
        except OSError:
            raise UciError(ERR_IO) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, encode(text))
            os.fsync(fd)
            target = os.path.realpath(pkg.path)
            os.fchmod(fd, _mode_of(target, 0o600))
            os.rename(tmp, target)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise UciError(ERR_IO) from None
        finally:
            os.close(fd)

    def overwrite(self, pkg):
        """`uci import` without -m: replace the file, no delta processing."""
        path, _, _, _ = self._locate(pkg.name)
        pkg.path = path
        if not os.path.exists(path):
            # A new file gets mode 0600 (mkstemp's default).
            pass
        self._write_config(pkg)

    # -- revert ----------------------------------------------------------------

    def revert(self, pkg, section=None, option=None):
        """Drop matching lines from `<savedir>/<pkg>` (only that file)."""
        self.save(pkg)
        try:
            fd = self._open_in_savedir(pkg.name, os.O_RDWR)
        except UciError:
            return
        try:
            lock(fd, pkg.name, exclusive=True)
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            kept = []
            for token in tokenize_single(data):
                delta = parse_delta_token(token, pkg.name) if token is not None else None
                if delta is None:
                    return  # libuci gives up silently on an unparsable line
                if section is not None and delta.section == section and (
                        option is None or delta.option == option):
                    continue
                if section is None:
                    continue
                kept.append(delta)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, encode("".join(d.line(pkg.name) for d in kept)))
        finally:
            os.close(fd)

    # -- helpers for library users -----------------------------------------------

    def new_package(self, name):
        pkg = Package(name)
        pkg.path, _, pkg.has_delta, pkg.from_conf2 = self._locate(name)
        pkg.changes, pkg.applied, pkg.pending = [], 0, []
        return pkg


def check_value(value):
    if value is not None and not valid_value(value):
        raise UciError(ERR_INVAL)
