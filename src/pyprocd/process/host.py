"""The host the core runs on: the process layer's side of core/host.py.

`Host` is the Spawner (fork/exec with procd's child setup, scripts, kill,
pidfiles, daemonising services) plus the lookups a spec needs at
submission, under the names the parse code calls (`facts`), with one
promise added at the boundary: `spawn()` raises SpawnError and nothing
else. Whatever preparing a child can throw (a hardening file nested
100,000 deep, a policy field of the wrong type, MemoryError) becomes an
instance error with a reason, so a `set` never stops half-way on one bad
instance.
"""

import os
import stat

from pyprocd.common import LOG_INFO, SpawnError
from pyprocd.process import files
from pyprocd.process.spawn import Spawner


class Host(Spawner):
    def __init__(self, loop, sink, base_env=None, log=None, *, subreaper=False, **spawner_options):
        """subreaper: whether the daemon is the child subreaper of its
        descendants (then a daemonising service is followed)."""
        super().__init__(loop, sink, base_env=base_env, log=log, **spawner_options)
        self.subreaper = subreaper

    # -- processes -----------------------------------------------------------

    def spawn(self, spec, on_exit, on_forked=None, announce=None):
        try:
            return super().spawn(spec, on_exit, on_forked, announce)
        except SpawnError:
            raise
        except Exception as e:  # noqa: BLE001 - the promise above: one error type
            raise SpawnError(f"cannot prepare the child: {type(e).__name__}: {e}") from None

    _zygotes = None

    def start_warm(self, spec, plan, on_exit, on_forked):
        """Python instances with the `zygote` key start from a zygote (process/zygote.py);
        never a traced or jailed one, whose plan a zygote's copy would not carry."""
        if spec.zygote is None or spec.trace or plan.jail is not None:
            return None
        from pyprocd.process import zygote

        if self._zygotes is None:
            self._zygotes = zygote.Zygotes(self.loop, self.base_env, self._log_info)
        return zygote.start_warm(self, self._zygotes, spec, plan, on_exit, on_forked)

    def _log_info(self, message):
        if self.log is not None:
            self.log(message, LOG_INFO)

    @property
    def can_follow_pidfiles(self):
        return self.subreaper

    # -- files ---------------------------------------------------------------

    @staticmethod
    def script_executable(path):
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return False
        return stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK)

    # -- lookups at submission (the parse code's `facts`) --------------------------

    @staticmethod
    def lookup_user(name):  # -> (uid, gid) or None
        import pwd

        try:
            pw = pwd.getpwnam(name)
        except (KeyError, UnicodeEncodeError, ValueError):
            return None
        return pw.pw_uid, pw.pw_gid

    @staticmethod
    def lookup_group(name):  # -> gid or None
        import grp

        try:
            return grp.getgrnam(name).gr_gid
        except (KeyError, UnicodeEncodeError, ValueError):
            return None

    @staticmethod
    def ifindex(name):
        import _socket  # C module: `socket` would import enum (~0.8 MB for the daemon's life)

        try:
            return _socket.if_nametoindex(name)
        except (OSError, ValueError):
            return 0

    @staticmethod
    def file_md5(path):
        # Regular files only, read in chunks, size-capped, no hashlib.
        return files.file_digest(path)

    @staticmethod
    def have_ujail():
        return os.path.exists("/sbin/ujail")
