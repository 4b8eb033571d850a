"""Making sure every process the benchmark starts also ends.

Supervisors put their services in sessions of their own and some (runsv,
s6-supervise) sit between us and the services, so killing one process group
is not enough.  The harness therefore:
  * becomes a child subreaper, so a service orphaned by a dying supervisor is
    re-parented to us instead of init and stays visible in our process tree;
  * tags every process it launches with a marker in the environment and a
    private temp dir, so stragglers can be found even without the tree;
  * on stop, failure or Ctrl-C, SIGKILLs the whole tree (supervisors first,
    so they cannot respawn what we kill) and reaps the zombies.
Only our own descendants and processes carrying our marker are touched.
"""

import ctypes
import os
import signal
import time

from . import procfs

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper(on=True):
    """Adopt orphaned descendants (or stop to); returns False where the kernel refuses."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_zombies():
    """Collect exit statuses of any of our children that have ended."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _signal_all(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def kill_all(roots=(), marker=None, include_own=False, timeout=10.0):
    """SIGKILL roots' trees, our own descendants and marked processes; wait until gone.

    Returns the pids still alive after timeout (normally none).
    """
    me = os.getpid()
    deadline = time.monotonic() + timeout
    while True:
        tree = procfs.descendants(list(roots))
        if include_own:
            tree += [p for p in procfs.descendants([me]) if p != me]
        if marker is not None:
            tree += procfs.processes_mentioning(marker)
        alive = [p for p in dict.fromkeys(tree) if p != me and not procfs.is_zombie(p)]
        if not alive:
            reap_zombies()
            return []
        # Freeze first so no supervisor restarts what we are about to kill.
        _signal_all(alive, signal.SIGSTOP)
        _signal_all(alive, signal.SIGKILL)
        reap_zombies()
        if time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


class Interrupted(BaseException):
    """Raised by SIGTERM/SIGHUP so that finally-blocks clean up, as for Ctrl-C."""


def _raise_interrupted(signum, _frame):
    raise Interrupted(f"signal {signum}")


def install_signal_handlers():
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)


def ignore_interrupts():
    """During the final cleanup a second Ctrl-C must not cut it short.

    Returns the handlers it replaced, for restore_handlers."""
    return {signum: signal.signal(signum, signal.SIG_IGN)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def restore_handlers(previous):
    for signum, handler in previous.items():
        signal.signal(signum, handler)
