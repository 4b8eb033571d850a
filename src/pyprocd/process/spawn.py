"""Fork/exec of instances with procd's child setup (spec §3.4), fail-closed.

The child runs a few lines of Python between fork and exec; any failure
there is written to a close-on-exec pipe and the child exits 127, so the
parent learns *why* (shown in `list`) instead of guessing from the code.
Identity switches are verified after the fact: a child never runs as root
because a user or group did not resolve or a set*id call failed.
"""

import _signal as signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)
import errno
import os
import resource
import sys

from pyprocd.common import LOG_ERR, LOG_INFO, SpawnError
from pyprocd.process import files
from pyprocd.process.logsink import PipeLogger, instance_ident

EXEC_FAILED = 127
GO = b"g"  # parent -> child: recorded, go ahead
# procd preloads this (it makes C stdio line-buffered) for a captured stdout.
SETLBF = "/lib/libsetlbf.so"
DEFAULT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# Python ignores these at start-up; an exec'd program must get the defaults.
PYTHON_IGNORED = (signal.SIGPIPE, signal.SIGXFSZ)
ALL_SIGNALS = signal.valid_signals()

RLIMITS = {
    "as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE", "memlock": "RLIMIT_MEMLOCK", "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "stack": "RLIMIT_STACK",
    "nice": "RLIMIT_NICE", "rtprio": "RLIMIT_RTPRIO", "msgqueue": "RLIMIT_MSGQUEUE",
    "sigpending": "RLIMIT_SIGPENDING",
}


def original_environment():
    """The environment the daemon was started with.

    os.environ is not it: CPython edits its own environment at start-up
    (PEP 538 sets LC_CTYPE). /proc/self/environ still holds the block we
    were exec'd with.
    """
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(os.environb)
    env = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key:
            env[key] = value
    return env


def build_env(base, spec, setlbf=None):
    """The daemon's start environment, the instance's `env`, then what procd adds:
    SECCOMP_FILE for a seccomp policy applied without jail or tracer, and the
    line-buffering preload (`setlbf`, when given) ahead of the instance's own
    LD_PRELOAD -- chained, where procd overwrites it."""
    env = dict(base)
    for key, value in spec.env:
        env[key.encode()] = value.encode()
    if spec.seccomp and spec.jail is None and not spec.trace:
        env[b"SECCOMP_FILE"] = spec.seccomp.encode()
    if setlbf:
        own = env.get(b"LD_PRELOAD")
        env[b"LD_PRELOAD"] = os.fsencode(setlbf) + (b":" + own if own else b"")
    return env


def parse_limit_value(text):
    """'unlimited' | 'soft [hard]' -> (soft, hard-or-None); None when unparsable.

    hard None means "keep the current hard limit" (procd's one-number form).
    """
    if text == "unlimited":
        return (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    parts = text.split()
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() and p.isascii() for p in parts):
        return None
    soft = int(parts[0])
    hard = int(parts[1]) if len(parts) == 2 else None
    if hard is not None and soft > hard:
        return None
    return (soft, hard)


def _limits_plan(spec):
    plan = []
    for name, text in spec.limits:
        attr = RLIMITS.get(name)
        value = parse_limit_value(text)
        if attr is None or value is None or not hasattr(resource, attr):
            continue  # unknown / unparsable: ignored like procd (and logged at submission)
        plan.append((getattr(resource, attr), value[0], value[1]))
    return plan


def _open_devnull():
    return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


def signals_to_reset():
    """Signals a forked child must set back to SIG_DFL before it may receive any.

    Those with a handler (the daemon's handlers write the signal number into the
    daemon's wakeup pipe: a child still running the daemon's code would make the
    daemon act on a signal meant for the child) and those Python itself ignores.
    Signals ignored by whoever started the daemon stay ignored, as under procd.
    """
    reset = list(PYTHON_IGNORED)
    for sig in ALL_SIGNALS:
        try:
            handler = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
        if handler not in (signal.SIG_DFL, signal.SIG_IGN) and sig not in reset:
            reset.append(sig)  # a Python handler, or one installed outside Python (None)
    return tuple(reset)


def fork_signals_blocked():
    """fork() with every signal blocked across it: (pid, the mask to restore).

    The parent's mask is restored here; the child must call child_signal_defaults()
    first, which restores it there once nothing of the daemon's can run on a signal.
    """
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return pid, old_mask


def child_signal_defaults(reset, old_mask):
    """In a child of fork_signals_blocked(): detach the daemon's wakeup pipe, default
    dispositions, then unblock. A signal that arrived meanwhile now acts on the child
    with its default action, as it would after exec."""
    signal.set_wakeup_fd(-1)
    for sig in reset:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


# pyprocd/trace/__main__.py, run by path with -I: the instance's PYTHON* variables
# cannot touch the tracer's interpreter, and the daemon's sys.path need not be passed on.
TRACER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "trace", "__main__.py")


def tracer_argv(spec):
    """`trace`: the command runs under pyprocd's tracer, a program of its own (its
    waitpid sees ptrace stops), as procd runs it under /sbin/utrace."""
    python = (sys.executable or "python3").encode()
    return [python, b"-I", os.fsencode(TRACER), b"-t", str(spec.term_timeout).encode(), b"--"]


class ChildPlan:
    """Everything the child needs, computed in the parent before fork."""

    def __init__(self, spec, base_env, hardening=None, setlbf=None, jail=None):
        self.argv = (tracer_argv(spec) if spec.trace else []) + [a.encode() for a in spec.command]
        self.env = build_env(base_env, spec, setlbf) if jail is None else jail.env
        self.jail = jail  # process/jail.py's JailPlan, entered before the identity switch
        path = self.env.get(b"PATH", DEFAULT_PATH.encode())
        self.path = path.decode(errors="replace")
        self.nice = spec.nice
        self.limits = _limits_plan(spec)
        self.user = spec.user
        self.uid = spec.uid
        self.gid = spec.gid
        # procd: initgroups(user, the user's primary gid), whatever `group` says
        self.groups_gid = _primary_gid(spec.user) if spec.user and spec.group else spec.gid
        self.new_session = spec.group_kill
        if jail is not None and jail.userns:  # the identity comes from the user namespace map
            self.user, self.uid, self.gid, self.groups_gid = None, 0, 0, 0
        self.hardening = hardening
        # Read right before a fork (see spawn): a posix_spawn child needs no list,
        # it resets every handled signal itself (glibc and musl).
        self.reset_signals = None
        self.signal_mask = ()  # the daemon's mask, restored in the child (set at fork)
        # what a zygote needs to prepare the same hardening in its own child
        self.hardening_inputs = (spec.no_new_privs, spec.capabilities, spec.seccomp)

    @classmethod
    def from_request(cls, fields, reset_signals):
        """A zygote's copy of the plan the daemon prepared: fields as plan_fields made
        them; reset_signals: those the child sets back to their defaults (none for a
        zygote's, whose dispositions are a fresh interpreter's already)."""
        plan = cls.__new__(cls)
        (plan.argv, env, plan.nice, plan.limits, plan.user, plan.uid, plan.gid,
         plan.groups_gid, plan.new_session, plan.hardening_inputs) = fields
        plan.env = dict(env)
        plan.path = plan.env.get(b"PATH", DEFAULT_PATH.encode()).decode(errors="replace")
        plan.jail = None  # a jailed instance is never started warm (see spawn)
        plan.hardening = None
        if any(plan.hardening_inputs):
            from pyprocd.process import harden

            plan.hardening = harden.prepare(*plan.hardening_inputs)
        plan.reset_signals = reset_signals
        plan.signal_mask = ()
        return plan


def plan_fields(plan):
    """What a zygote's child needs of a plan, as plain data, in the order
    ChildPlan.from_request reads it."""
    return (plan.argv, list(plan.env.items()), plan.nice, plan.limits, plan.user, plan.uid,
            plan.gid, plan.groups_gid, plan.new_session, plan.hardening_inputs)


HAVE_POSIX_SPAWN = hasattr(os, "posix_spawn")  # a libc without it: every start forks


def spawns_simply(spec, plan):
    """Can posix_spawn start it? Only what needs nothing of a forked Python child:
    no user or group, nice, limits, hardening, own session (group_kill), jail or zygote."""
    return (HAVE_POSIX_SPAWN and spec.zygote is None and not spec.jail and plan.user is None
            and not plan.uid and not plan.gid and not plan.nice and not plan.limits
            and plan.hardening is None and not plan.new_session)


def _resolve(program, search_path):
    """execvpe's choice of file for `program` (bytes) on `search_path`, or None if
    there is none that may be executed."""
    if b"/" in program:
        return program
    for directory in search_path.split(":"):
        candidate = os.path.join(os.fsencode(directory or "."), program)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def _primary_gid(user):
    import pwd

    try:
        return pwd.getpwnam(user).pw_gid
    except (KeyError, UnicodeEncodeError, ValueError):
        raise OSError(f"user '{user}' not found") from None


def _switch_identity(plan):
    """initgroups -> setgid -> setuid, each checked, then verified (fail closed)."""
    uid, gid = plan.uid, plan.gid
    if uid == os.getuid() and gid == os.getgid() and uid != 0:
        return  # unprivileged daemon running its own user's service: nothing to switch
    if plan.user is not None and uid != 0:
        os.initgroups(plan.user, plan.groups_gid)
    elif gid != 0:
        os.setgroups([gid])  # only `group`: don't keep root's supplementary groups
    if gid != 0:
        os.setgid(gid)
    if plan.hardening is not None:
        plan.hardening.before_setuid()
    if uid != 0:
        os.setuid(uid)
    if (uid and (os.getuid(), os.geteuid()) != (uid, uid)) or (
        gid and (os.getgid(), os.getegid()) != (gid, gid)
    ):
        raise OSError(f"identity switch to uid {uid} gid {gid} did not take effect")


def setup_child(plan, stdout_fd, stderr_fd, progress, go=None):
    """In a new child, everything up to the point where it execs: signals, the
    daemon's go-ahead, session, nice, limits, stdio, user/group, hardening.
    progress[0] names the current stage (the reason shown in `errors` when a step
    fails). A zygote's child (process/zygote.py) runs the same."""
    progress[0] = "signals"
    child_signal_defaults(plan.reset_signals, plan.signal_mask)
    if go is not None:
        _wait_for_go(*go)
    progress[0] = "setup"
    if plan.new_session:
        progress[0] = "setsid"
        os.setsid()
    if plan.nice:
        progress[0] = "setpriority"
        os.setpriority(os.PRIO_PROCESS, 0, plan.nice)
    progress[0] = "setrlimit"
    for which, soft, hard in plan.limits:
        if hard is None:
            hard = resource.getrlimit(which)[1]
        resource.setrlimit(which, (soft, hard))
    progress[0] = "stdio"
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(stdout_fd if stdout_fd is not None else devnull, 1)
    os.dup2(stderr_fd if stderr_fd is not None else devnull, 2)
    if plan.jail is not None:
        progress[0] = "jail"
        from pyprocd.process import jail

        jail.enter(plan.jail)  # only the jailed process returns (pid 1 inside)
    progress[0] = "user/group"
    _switch_identity(plan)
    if plan.hardening is not None:
        progress[0] = "hardening"
        plan.hardening.after_setuid()
        plan.hardening.apply_in_child()  # from here on only execve may follow


def report_child_failure(err_w, stage, error, target=""):
    """Tell the daemon, through the child's error pipe, why it will not run."""
    detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    reason = f"{stage} {target}: {detail}" if target else f"{stage}: {detail}"
    try:
        os.write(err_w, reason.encode("utf-8", "replace")[:1024])
    except BaseException:  # noqa: BLE001 - nobody left to tell
        pass


def _child(plan, stdout_fd, stderr_fd, err_w, go=None):
    """In the forked child: set up and exec. Never returns."""
    progress = ["signals"]
    try:
        setup_child(plan, stdout_fd, stderr_fd, progress, go)
        progress[0] = "exec"
        os.execvpe(plan.argv[0], plan.argv, plan.env)
    except BaseException as e:  # noqa: BLE001 - the child must never return into the daemon
        target = plan.argv[0].decode(errors="replace") if progress[0] == "exec" else ""
        report_child_failure(err_w, progress[0], e, target)
    os._exit(EXEC_FAILED)


def _wait_for_go(go_r, go_w):
    """Run on only once the daemon recorded this process. If the daemon dies
    first (the pipe closes without a byte), nobody would supervise it: exit."""
    try:
        os.close(go_w)  # or our own copy would keep the pipe open
        if os.read(go_r, 1) == GO:
            os.close(go_r)
            return
    except BaseException:  # noqa: BLE001 - the child must never return into the daemon
        pass
    os._exit(EXEC_FAILED)


def release(go_w):
    try:
        os.write(go_w, GO)
    except OSError:
        pass  # the child is gone already: its exit is reported as usual
    os.close(go_w)


class Running:
    """The process side of one started instance: pid, log pipes, error pipe."""

    def __init__(self, pid, err_r, uid=None):
        self.pid = pid
        self.err_r = err_r
        self.exec_error = None
        self.loggers = []
        self.uid = uid  # the user it was started as (None: root/unchanged)
        self.start_ticks = None  # /proc starttime, read when a pidfile may be followed


class Spawner:
    """Starts instances on a Loop and reports their exits.

    spawn(spec, on_exit) -> Running; on_exit(status, exec_error) is called
    once, with the raw wait status (None if unknown) and the reason the child
    could not exec (None if it did).
    """

    def __init__(self, loop, sink, base_env=None, log=None, setlbf=SETLBF):
        self.loop = loop
        self.sink = sink
        self.base_env = base_env if base_env is not None else original_environment()
        self.log = log
        self.setlbf = setlbf

    def _hardening_plan(self, spec):
        if not (spec.no_new_privs or spec.capabilities or spec.seccomp):
            return None
        try:
            from pyprocd.process import harden
        except ImportError as e:
            raise SpawnError(f"hardening unavailable: {e}") from None
        seccomp = None if spec.trace else spec.seccomp   # procd: trace turns seccomp off
        try:
            return harden.prepare(spec.no_new_privs, spec.capabilities, seccomp)
        except (ValueError, OSError) as e:
            raise SpawnError(str(e)) from None

    jail_sockets = None  # {"ubus"|"log"|"udebug": the host's socket bound into a jail}
    use_ujail = False    # jailed instances run under /sbin/ujail instead (as procd does)

    def _jail_plan(self, spec):
        if spec.jail is None or spec.trace:  # procd: `trace` disables the jail
            return None
        if self.use_ujail:
            return None
        from pyprocd.process import jail

        sockets = {"log": self.sink.path} if getattr(self.sink, "path", None) else {}
        sockets.update(self.jail_sockets or {})  # the daemon's ubus socket, for one
        try:
            return jail.prepare(spec, sockets)
        except jail.JailError as e:
            raise SpawnError(str(e)) from None

    def _ujail_plan(self, spec, setlbf):
        """procd's way: exec /sbin/ujail with the argv procd builds; ujail switches
        user/group and applies capabilities, no_new_privs and seccomp itself."""
        from pyprocd.process import jail

        if not os.path.exists(jail.UJAIL):
            raise SpawnError(f"jail: {jail.UJAIL} not found (setting jail 'ujail')")
        try:
            plan = ChildPlan(spec, self.base_env, None, setlbf)
        except (OSError, ValueError) as e:
            raise SpawnError(f"cannot prepare the child: {e}") from None
        plan.argv = [os.fsencode(a) for a in jail.ujail_argv(spec)]
        plan.user, plan.uid, plan.gid = None, 0, 0
        return plan

    def _plan(self, spec):
        """The child's plan, prepared before fork; anything unusable is a SpawnError."""
        if self.use_ujail and spec.jail is not None and not spec.trace:
            usable = self.setlbf if spec.stdout and self.setlbf and os.path.exists(self.setlbf) else None
            return self._ujail_plan(spec, usable)
        jail = self._jail_plan(spec)
        hardening = self._hardening_plan(spec)
        try:
            setlbf = self.setlbf if spec.stdout and self.setlbf and os.path.exists(self.setlbf) else None
            return ChildPlan(spec, self.base_env, hardening, None if jail else setlbf, jail)
        except (OSError, ValueError) as e:  # e.g. a command or env that cannot be encoded
            raise SpawnError(f"cannot prepare the child: {e}") from None

    @staticmethod
    def pipe(enabled, opened):
        if not enabled:
            return None, None
        r, w = os.pipe()
        opened += (r, w)
        return r, w

    def spawn(self, spec, on_exit, on_forked=None, announce=None):
        """on_forked(running), if given, runs after the fork and before the
        child may go on to exec: a daemon killed before it returns leaves no
        process behind (the child sees the pipe close and exits).

        announce(identity), if given as well, lets such a caller have the
        process started with posix_spawn, which returns only after the exec:
        it is called right before, with what will identify the process in
        /proc ("argv", the "path" executed, its log "pipes" by inode and
        priority, the name its log lines go out as, "log_as"), and must have
        that on record when it returns; on_forked(running) follows once the
        process runs."""
        plan = self._plan(spec)
        running = self.start_warm(spec, plan, on_exit, on_forked)
        if running is not None:
            return running
        elif (on_forked is None or announce is not None) and spawns_simply(spec, plan):
            running = self._spawn_simple(spec, plan, on_exit, on_forked, announce)
            if running is not None:
                return running
        if plan.reset_signals is None:
            plan.reset_signals = signals_to_reset()
        fds = []   # every pipe end opened so far, closed on any failure
        stage = "pipe"
        try:
            out_r, out_w = self.pipe(spec.stdout, fds)
            err_r_log, err_w_log = self.pipe(spec.stderr, fds)
            err_r, err_w = self.pipe(True, fds)
            go_r, go_w = self.pipe(on_forked is not None, fds)
            stage = "fork"
            pid, plan.signal_mask = fork_signals_blocked()
        except OSError as e:
            for fd in fds:
                os.close(fd)
            raise SpawnError(f"{stage} failed: {e.strerror or e}") from None
        if pid == 0:
            _child(plan, out_w, err_w_log, err_w, (go_r, go_w) if go_w is not None else None)
        for fd in (out_w, err_w_log, err_w, go_r):
            if fd is not None:
                os.close(fd)
        try:
            return self.started(spec, pid, err_r, out_r, err_r_log, on_exit, on_forked)
        finally:
            if go_w is not None:
                release(go_w)

    def _spawn_simple(self, spec, plan, on_exit, on_forked=None, announce=None):
        """posix_spawn: no copy of the daemon's page tables, no Python in the child.

        None when the program did not start this way (not found on PATH, exec
        failed): the fork path then runs the same search in the child and
        reports the reason exactly as it always does ("exec <path>: <strerror>").
        """
        path = _resolve(plan.argv[0], plan.path)
        if path is None:
            return None
        fds = []
        try:
            out_r, out_w = self.pipe(spec.stdout, fds)
            err_r_log, err_w_log = self.pipe(spec.stderr, fds)
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            fds.append(null)
            stdio = (null, out_w if out_w is not None else null,
                     err_w_log if err_w_log is not None else null)
            if announce is not None:
                announce(self._identity(spec, plan, path, out_r, err_r_log))
            pid = os.posix_spawn(path, plan.argv, plan.env,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(stdio)],
                                 setsigdef=PYTHON_IGNORED)
        except OSError:
            for fd in fds:
                os.close(fd)
            return None
        for fd in (out_w, err_w_log, null):
            if fd is not None:
                os.close(fd)
        return self.started(spec, pid, None, out_r, err_r_log, on_exit, on_forked)

    @staticmethod
    def _identity(spec, plan, path, out_r, err_r_log):
        """What announce() is told: how the process will show in /proc."""
        pipes = []
        for child_fd, fd, priority in ((1, out_r, LOG_INFO), (2, err_r_log, LOG_ERR)):
            if fd is not None:
                pipes.append({"child_fd": child_fd, "ino": os.fstat(fd).st_ino,
                              "priority": spec.facility | priority})
        return {"argv": [os.fsdecode(a) for a in plan.argv], "path": os.fsdecode(path),
                "pipes": pipes, "log_as": spec.command[0]}

    def started(self, spec, pid, err_r, out_r, err_r_log, on_exit, on_forked):
        running = Running(pid, err_r, spec.uid or None)
        if spec.pidfile:
            from pyprocd.process.procfs import start_ticks  # only pidfile instances need it

            running.start_ticks = start_ticks(pid)
        ident = instance_ident(spec.command[0], pid)
        if out_r is not None:
            running.loggers.append(PipeLogger(self.loop, out_r, self.sink, ident, spec.facility | LOG_INFO))
        if err_r_log is not None:
            running.loggers.append(PipeLogger(self.loop, err_r_log, self.sink, ident, spec.facility | LOG_ERR))
        if err_r is not None:
            os.set_blocking(err_r, False)
            self.loop.add_reader(err_r, lambda: self._read_exec_error(running))
        self.loop.watch_child(pid, lambda p, status: self._exited(running, status, on_exit))
        if on_forked is not None:
            on_forked(running)
        return running

    def start_warm(self, spec, plan, on_exit, on_forked):
        """A start without forking the daemon (process/host.py: zygotes); None: fork."""

    def _read_exec_error(self, running):
        """EOF without data = exec succeeded (the pipe is close-on-exec)."""
        if running.err_r is None:
            return
        try:
            data = os.read(running.err_r, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            running.exec_error = data.decode("utf-8", "replace")
        self.loop.remove_reader(running.err_r)
        os.close(running.err_r)
        running.err_r = None

    def _exited(self, running, status, on_exit):
        # The reason, if any, was written before the child exited: read it now.
        self._read_exec_error(running)
        on_exit(status, running.exec_error)

    # -- daemonising services -------------------------------------------------

    subreaper = False  # set by the daemon once it is the reaper of orphaned descendants

    def follow_pidfile(self, path, exited, callback, owned_elsewhere=None):
        """A main process (`exited`, its Running) exited cleanly: did it daemonise and
        name its successor in `path`?

        callback(new_pid or None), once. Only a descendant of the instance is taken:
        a process re-parented to us (we must be a subreaper), started after the
        exited one, of the instance's user, and not a pid `owned_elsewhere(pid)`
        says is another instance's. A stale or planted pidfile naming some other
        process never gets it adopted and later killed.
        """
        if not self.subreaper:
            callback(None)
            return
        from pyprocd.process.harden import Lineage, follow_pidfile_async

        lineage = Lineage(os.getpid(), exited.start_ticks, exited.uid, owned_elsewhere)
        follow_pidfile_async(self.loop, path, exited.pid, callback, lineage=lineage)

    # Pidfiles the daemon writes for instances (raise OSError; see files.py).
    write_pidfile = staticmethod(files.write_pidfile)
    remove_pidfile = staticmethod(files.remove_pidfile)

    def adopt_child(self, pid, on_exit):
        """Track a descendant that became the main process; its output is not ours to log."""
        from pyprocd.process.procfs import proc_uid, start_ticks

        running = Running(pid, None, proc_uid(pid) or None)
        running.start_ticks = start_ticks(pid)
        self.loop.watch_child(pid, lambda p, status: on_exit(status, None))
        return running

    def run_script(self, argv, on_done):
        """Run a helper command (init.d `running`) with /dev/null stdio.

        on_done(raw_status) when it exits. Returns the pid; raises OSError.
        """
        pid = self.start_script(argv)
        self.loop.watch_child(pid, lambda p, status: on_done(status))
        return pid

    def start_script(self, argv):
        """Start a helper command (init.d `running`, trigger scripts): /dev/null stdio,
        the daemon's original environment, default SIGPIPE/SIGXFSZ. The caller reaps it.

        posix_spawn's child resets every handled signal itself before it can run
        anything of ours (glibc and musl), so no signal of it reaches the daemon.
        Returns the pid; raises OSError.
        """
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            return os.posix_spawnp(
                argv[0], argv, self.base_env,
                file_actions=[(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)],
                setsigdef=PYTHON_IGNORED,
            )
        finally:
            os.close(null)

    def kill(self, pid, sig, group=False):
        """Send sig; returns 0 or the errno. group=True targets the process group."""
        if pid <= 0:
            return errno.ESRCH  # never kill(0)/kill(-1) by accident
        try:
            os.kill(-pid if group else pid, sig)
        except OSError as e:
            if group and e.errno == errno.ESRCH:
                return self.kill(pid, sig)  # group gone already: try the main pid
            return e.errno
        return 0
