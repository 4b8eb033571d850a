"""Live re-exec: the daemon replaces its own code and keeps every child.

How (mds-respawn's idea, done with Linux fds):

1. The whole state (the manager's export_state(), with each instance's log
   pipe fds and the bytes of a partial line still in our buffer) is written
   to a memfd.
2. Every fd to keep (memfd, log pipes, the locked pidfile) is made
   inheritable; everything else is close-on-exec (Python's default).
3. os.execv(sys.executable, same interpreter options + argv), with
   PYPROCD_REEXEC_FD=<memfd> in the environment.

Control signals (SIGTERM, SIGINT, SIGUSR1/2, the re-exec signal) are blocked
across the exec and unblocked once the new image catches them: a SIGTERM sent
meanwhile is neither lost nor fatal, it stops the new image.

The pid does not change, so every instance stays our child (its exit
status is still ours to collect; a child that exits during the exec stays a
zombie until the new image reaps it). Unread output stays in the pipes and
the new image reads on from the same fds: no line is lost. The pidfile's
fcntl lock belongs to the process and survives exec with its fd.

Not kept: the ubus connection (the new image registers the object again, so
callers see the method table disappear for the length of the exec); trigger
actions queued but not yet run; log pipes of instances that already exited
while a grandchild still holds the pipe open.
"""

import _signal as signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)
import os
import sys


def _memfd(data):
    try:
        fd = os.memfd_create("pyprocd-state", 0)  # not MFD_CLOEXEC: inherited
    except (AttributeError, OSError):
        # No memfd (very old kernel): an unlinked temporary file does the same.
        import tempfile

        fd, path = tempfile.mkstemp(prefix="pyprocd-state-")
        os.unlink(path)
        os.set_inheritable(fd, True)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def exec_argv():
    """The command line we were started with: interpreter, its options, argv."""
    orig = getattr(sys, "orig_argv", None)
    if orig:
        return [sys.executable] + list(orig[1:])
    return [sys.executable] + list(sys.argv)


def control_signals():
    """Signals the daemon handles, which must not be lost, nor kill it, while
    the new image starts: blocked (pending) across the exec until it catches
    them. (SIGHUP is not one: main keeps whatever disposition it inherited.)"""
    names = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2")
    return {getattr(signal, n) for n in names} | {signal.SIGRTMIN + 1}


def catch_control_signals(loop):
    """In the new image, first thing: catch the control signals on the loop
    (placeholders; main and Survival.install() put the real handlers in place
    before the loop dispatches anything) and unblock them. Unblocking at once
    matters: children inherit the signal mask."""
    for signum in control_signals():
        loop.add_signal_handler(signum, lambda signum: None)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, control_signals())


def exec_environment():
    """The environment block this image was exec'd with (bytes -> bytes)."""
    from pyprocd.process.spawn import original_environment

    return original_environment()


def handover(state, keep_fds, env_var, drain_signals=None):
    """Serialize `state`, keep `keep_fds` open, exec ourselves. Returns only
    if the exec failed (then the fds are close-on-exec again): raises OSError.

    drain_signals() -> signal numbers caught but not yet dispatched (the
    loop's wakeup bytes): with the control signals blocked, they are raised
    again so that they wait, pending, for the new image."""
    import json  # the process is about to exec itself: costs nothing lasting

    from pyprocd.daemon.state import STATE_FORMAT

    data = json.dumps({"format": STATE_FORMAT, **state}, separators=(",", ":")).encode()
    fd = _memfd(data)
    for keep in keep_fds:
        os.set_inheritable(keep, True)
    argv = exec_argv()
    # Not os.environ: CPython edited that at start-up (PEP 538 adds LC_CTYPE),
    # and the new image's /proc/self/environ is what its instances inherit.
    env = exec_environment()
    env[env_var.encode()] = str(fd).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, control_signals())
    try:
        if drain_signals is not None:
            for signum in drain_signals():
                if signum in control_signals() and signum != signal.SIGRTMIN + 1:
                    signal.raise_signal(signum)  # blocked: stays pending over the exec
        os.execve(argv[0], argv, env)
    except BaseException:
        # Never go on running with SIGTERM & co. blocked: the daemon could
        # then not be stopped any more.
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for keep in keep_fds:
            try:
                os.set_inheritable(keep, False)
            except OSError:
                pass
        os.close(fd)
        raise


def receive(fd):
    """Read and close the handed-over state."""
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    import json  # a re-exec'd daemon: the json module is the price of the handover

    from pyprocd.daemon.state import migrate

    state, reason = migrate(json.loads(b"".join(chunks)))
    if state is None:
        raise ValueError(f"handed-over state: {reason}")
    return state

