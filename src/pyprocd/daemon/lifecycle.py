"""Daemon lifecycle: --detach, --pidfile, --monitor, crash exit code, re-exec entry.

Modelled on Open vSwitch's daemon helpers (lib/daemon-unix.c):

* `--detach`: the starting process forks and waits on a readiness pipe. It
  exits 0 only once the daemon called `notify_ready()` (its ubus object is
  registered); if the daemon dies first, it exits with the daemon's exit code
  (128 + signal number when killed), so `pyprocd --detach && next-step` is
  reliable. The daemon runs in its own session, stdio on /dev/null once ready.
* `--no-chdir`: by default the daemon changes to / so that it pins no mount.
* `--pidfile[=FILE]`, `--overwrite-pidfile`: see pidfile.py.
* `--monitor`: a tiny parent that restarts the daemon when it dies of a crash
  signal or an unhandled exception (exit code EXIT_CRASH), at most once per
  MONITOR_INTERVAL, never when it exits cleanly or is stopped on purpose.

Order matters for memory: `start()` must run before the daemon imports the
core, the bus or the api, so the monitor (a fork of this process that lives
as long as the daemon) carries only os/sys/signal/fcntl/struct/errno/time.

Usage from the daemon main:

    opts, argv = lifecycle.parse_args(argv)
    life = lifecycle.Lifecycle(opts)
    life.start()            # returns in the daemon process only
    ... import the heavy modules, register the ubus object ...
    life.notify_ready()
    ... run the loop ...
    life.finish()           # clean exit: pidfile removed
"""

import _signal as signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)
import errno
import os
import sys
import time

from pyprocd.daemon.pidfile import DEFAULT_PIDFILE, Pidfile, PidfileError

# Exit code of a daemon that died of an unhandled exception (EX_SOFTWARE).
# The monitor treats it like a crash signal and restarts the daemon.
EXIT_CRASH = 70
# Exit code when the daemon cannot start (pidfile owned by a live daemon, ...).
EXIT_STARTUP_FAILED = 1

# Signals that mean "the daemon crashed" (OVS's list, plus SIGSYS).
CRASH_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGPIPE",
                 "SIGALRM", "SIGXCPU", "SIGXFSZ", "SIGSYS")
    if hasattr(signal, name)
)
MONITOR_INTERVAL = 10.0  # at most one restart per this many seconds
# Signals the monitor passes on to the daemon (users may signal either pid).
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                     signal.SIGUSR1, signal.SIGUSR2)

DEFAULT_STATE_FILE = "/var/run/pyprocd/state.json"
# Set in the environment of a re-exec'd daemon: fd number of the handed-over
# state. Removed from os.environ at once so instances never see it.
REEXEC_ENV = "PYPROCD_REEXEC_FD"

_READY = b"R"


class Options:
    """Lifecycle command-line options (the rest of argv belongs to main)."""

    def __init__(self):
        self.detach = False
        self.chdir = True
        self.pidfile = None
        self.overwrite_pidfile = False
        self.monitor = False
        self.state_file = DEFAULT_STATE_FILE
        self.monitor_interval = MONITOR_INTERVAL


USAGE = f"""\
lifecycle options:
  --detach               run in the background; return when ready
  --no-chdir             do not change to / (default: chdir /)
  --pidfile[=FILE]       create a locked pidfile (default FILE {DEFAULT_PIDFILE})
  --overwrite-pidfile    replace an existing pidfile instead of refusing
  --monitor              restart the daemon when it crashes
  --state-file=FILE      crash-survival state (default {DEFAULT_STATE_FILE}; 'none' disables)
"""


def parse_args(argv):
    """Split lifecycle options off argv: returns (Options, remaining argv)."""
    opts = Options()
    rest = []
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if arg == "--detach":
            opts.detach = True
        elif arg == "--no-chdir":
            opts.chdir = False
        elif name == "--pidfile":
            opts.pidfile = os.path.abspath(value if eq else DEFAULT_PIDFILE)
        elif arg == "--overwrite-pidfile":
            opts.overwrite_pidfile = True
        elif arg == "--monitor":
            opts.monitor = True
        elif name == "--state-file":
            value = value if eq else next(args, "none")
            opts.state_file = None if value in ("", "none") else os.path.abspath(value)
        elif name == "--monitor-interval":  # for tests: OVS's 10 s by default
            opts.monitor_interval = float(value if eq else next(args, MONITOR_INTERVAL))
        else:
            rest.append(arg)
    if opts.overwrite_pidfile and opts.pidfile is None:
        opts.pidfile = DEFAULT_PIDFILE
    return opts, rest


def exit_code_of(status):
    """Shell-style exit code of a raw wait status (128 + signal when killed)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def describe_status(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        import signal as signal_names  # only on this rare path: it imports enum

        try:
            name = signal_names.Signals(sig).name
        except ValueError:
            name = str(sig)
        core = " (core dumped)" if os.WCOREDUMP(status) else ""
        return f"killed by {name}{core}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def is_crash(status):
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) in CRASH_SIGNALS
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_CRASH


def _log(message, detached):
    print(f"pyprocd: {message}", file=sys.stderr, flush=True)
    if detached:
        import syslog  # small C module; stderr is /dev/null once detached

        syslog.openlog("pyprocd", syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(syslog.LOG_NOTICE, message)


def _wait(pid):
    """Blocking waitpid, tolerant of signals (their handlers forward them)."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def _read_ready(fd):
    """True if the peer wrote the ready byte, False if it closed the pipe."""
    try:
        return os.read(fd, 1) == _READY
    finally:
        os.close(fd)


def _stdio_to_devnull():
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _crash_excepthook(kind, value, tb):
    """An unhandled exception ends the daemon with EXIT_CRASH so the monitor
    (and a --detach parent) can tell it from a deliberate exit."""
    import traceback

    try:
        text = "".join(traceback.format_exception(kind, value, tb))
        print(f"pyprocd: unhandled exception, exiting {EXIT_CRASH}\n{text}",
              file=sys.stderr, flush=True)
        if not os.isatty(2):
            import syslog

            syslog.syslog(syslog.LOG_CRIT, f"unhandled exception: {value!r}")
    finally:
        os._exit(EXIT_CRASH)


class Lifecycle:
    def __init__(self, opts):
        self.opts = opts
        self.pidfile = None
        self.handed_over = None  # state handed over by a live re-exec
        self._ready_fd = None  # write end of the readiness pipe
        self._detached = False
        self.ready = False

    # -- start -----------------------------------------------------------

    def start(self):
        """Detach / monitor / pidfile. Returns only in the daemon process.

        After a live re-exec nothing is redone: the process already is the
        daemon, and it still holds the pidfile lock (the fd survived exec).
        """
        sys.excepthook = _crash_excepthook
        inherited = os.environ.pop(REEXEC_ENV, None)
        if inherited is not None:
            self._resume_after_reexec(int(inherited))
            return
        if self.opts.detach:
            self._detach()
        if self.opts.monitor:
            self._monitor()
        self._take_pidfile()
        if self.opts.chdir:
            os.chdir("/")

    def _resume_after_reexec(self, fd):
        from pyprocd.daemon import reexec

        try:
            self.handed_over = reexec.receive(fd)
        except (ValueError, OSError) as e:
            # Serve on: the survival code says what was lost.
            self.handed_over = {"refused": str(e), "extra": {}}
        self._detached = self.opts.detach
        self.ready = True
        info = self.handed_over.get("pidfile")
        if info:
            self.pidfile = Pidfile.adopt(info["path"], info["fd"])

    def instance_environment(self):
        """The environment instances and scripts get: the block this daemon was
        started with (not os.environ: CPython edits that), without the
        re-exec hand-over's fd number."""
        from pyprocd.process.spawn import original_environment

        env = original_environment()
        env.pop(REEXEC_ENV.encode(), None)
        return env

    def _take_pidfile(self):
        if self.opts.pidfile is None:
            return
        try:
            self.pidfile = Pidfile.create(self.opts.pidfile, self.opts.overwrite_pidfile)
        except (PidfileError, OSError) as e:
            # Still attached to the caller's stderr: the message reaches it,
            # and the exit code reaches the --detach parent.
            _log(str(e), False)
            sys.exit(EXIT_STARTUP_FAILED)

    def _detach(self):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid:
            os.close(ready_w)
            if _read_ready(ready_r):
                os._exit(0)
            os._exit(exit_code_of(_wait(pid)))
        os.close(ready_r)
        os.setsid()
        self._ready_fd = ready_w
        self._detached = True

    # -- monitor -----------------------------------------------------------

    def _monitor(self):
        """Become the monitor; only the forked daemon returns from here."""
        _set_comm("pyprocd-mon")
        daemon_pid = [0]

        def forward(signum, frame):
            if daemon_pid[0]:
                try:
                    os.kill(daemon_pid[0], signum)
                except ProcessLookupError:
                    pass
            elif signum in (signal.SIGTERM, signal.SIGINT):
                os._exit(0)  # between two daemons: nothing to stop

        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, forward)
        last_start = None
        while True:
            if last_start is not None:
                pause = last_start + self.opts.monitor_interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            last_start = time.monotonic()
            pid, ready_r = self._fork_daemon()
            if pid == 0:
                for signum in FORWARDED_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                _set_comm("pyprocd")
                return
            daemon_pid[0] = pid
            ready = _read_ready(ready_r)
            if ready and self._ready_fd is not None:
                self._pass_ready_on()
            status = _wait(pid)
            daemon_pid[0] = 0
            if not ready:
                # Died during start-up: restarting would just loop (OVS does
                # the same). Report its code to whoever waits on us.
                _log(f"daemon (pid {pid}) failed to start: {describe_status(status)}",
                     self._detached)
                os._exit(exit_code_of(status))
            if not is_crash(status):
                _log(f"daemon (pid {pid}) exited: {describe_status(status)}",
                     self._detached)
                os._exit(exit_code_of(status))
            if os.WIFSIGNALED(status) and os.WCOREDUMP(status):
                _disable_core_dumps()
            _log(f"daemon (pid {pid}) crashed: {describe_status(status)}, restarting",
                 self._detached)

    def _fork_daemon(self):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            if self._ready_fd is not None:
                os.close(self._ready_fd)
            self._ready_fd = ready_w
            return 0, None
        os.close(ready_w)
        return pid, ready_r

    def _pass_ready_on(self):
        self._send_ready()
        _stdio_to_devnull()

    # -- readiness and exit ------------------------------------------------

    def _send_ready(self):
        fd, self._ready_fd = self._ready_fd, None
        if fd is None:
            return
        try:
            os.write(fd, _READY)
        except OSError as e:
            if e.errno != errno.EPIPE:  # the waiting parent was killed
                raise
        finally:
            os.close(fd)

    def notify_ready(self):
        """Call once the daemon serves requests (ubus object registered)."""
        if self.ready:
            return
        self.ready = True
        self._send_ready()
        if self._detached:
            _stdio_to_devnull()

    def finish(self):
        """Clean exit: remove the pidfile (the lock goes with the process)."""
        if self.pidfile is not None:
            self.pidfile.remove()
            self.pidfile = None


def _set_comm(name):
    # The monitor and the daemon look alike in `ps`; the thread name (top,
    # ps -o comm) tells them apart. Best effort.
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name)
    except OSError:
        pass


def _disable_core_dumps():
    # One core is useful, a disk full of identical cores is not (OVS).
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
