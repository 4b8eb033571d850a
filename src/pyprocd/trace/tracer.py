"""The ptrace loop: start a program traced from its execve and follow its whole tree.

Start: the forked child stops itself (SIGSTOP), the tracer seizes it with
PTRACE_O_TRACE{FORK,VFORK,CLONE,EXEC} (every descendant and thread is attached by the
kernel itself, no race) and EXITKILL (if the tracer dies, nothing runs on untraced),
then sends SIGCONT; the child execs. The tracer is the subreaper of the tree, so
orphans come back to it and it reaps them: when waitpid(-1, __WALL) says there is no
child left, the traced tree is gone.

Each syscall costs one stop, not two: the child installs a one-instruction seccomp
filter (every syscall: SECCOMP_RET_TRACE) before its execve, and the tracees run
under PTRACE_CONT, stopping only at those seccomp events. Where no filter can be
loaded (a kernel without seccomp) the tracer falls back to PTRACE_SYSCALL, which stops
at each syscall's entry and exit. Without CAP_SYS_ADMIN the filter needs
no_new_privs, which ptrace makes moot anyway (a traced exec gains no privileges).

Signals are blocked and taken with sigwaitinfo, never by a handler: a SIGTERM that
arrives just before the tracer sleeps in wait is still seen at once (a handler can
miss that window), and no Python handler runs between two ptrace calls. The stop
deadline is a sigtimedwait timeout, so SIGALRM stays the program's.
"""

import contextlib
import os
import signal
import time

from pyprocd.process import shim, syscalls
from pyprocd.trace import policy

OPTIONS = (shim.PTRACE_O_TRACESYSGOOD | shim.PTRACE_O_TRACEFORK | shim.PTRACE_O_TRACEVFORK
           | shim.PTRACE_O_TRACECLONE | shim.PTRACE_O_TRACEEXEC | shim.PTRACE_O_TRACESECCOMP
           | shim.PTRACE_O_EXITKILL)
TRACE_EVERY_SYSCALL = [(0x06, 0, 0, 0x7FF00000)]   # BPF_RET|BPF_K SECCOMP_RET_TRACE
COUNTED_OPS = (shim.PTRACE_SYSCALL_INFO_ENTRY, shim.PTRACE_SYSCALL_INFO_SECCOMP)
SYSCALL_STOP = signal.SIGTRAP | 0x80           # PTRACE_O_TRACESYSGOOD marks syscall stops
NEW_TRACEE_EVENTS = (shim.PTRACE_EVENT_FORK, shim.PTRACE_EVENT_VFORK, shim.PTRACE_EVENT_CLONE)
GROUP_STOP_SIGNALS = frozenset((signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU))
# Passed on to the traced program: what a supervisor (stop, reload_signal, the
# `signal` method) or a terminal sends. Left to their default action these would end
# or stop the tracer, and with it (EXITKILL) the program. SIGTERM and SIGINT also
# start the exit deadline.
FORWARDED = tuple(getattr(signal, name) for name in (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTERM", "SIGWINCH",
    "SIGVTALRM", "SIGPROF", "SIGPWR", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU")
    if hasattr(signal, name))
STOP_REQUESTS = (signal.SIGTERM, signal.SIGINT)
WAKE = FORWARDED + (signal.SIGCHLD,)
SIGNAL_POLL_EVERY = 64   # events handled between two looks at pending signals
EXEC_FAILED = 127


class TraceError(Exception):
    """The program could not be traced; str() says why, exit_code is the tracer's."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


class Tracer:
    """One traced program. start(), then run() -> the program's wait status."""

    def __init__(self, path, argv, env, grace=4.0, log=print, seccomp_stops=True):
        self.path, self.argv, self.env = path, argv, env
        self.grace = grace          # seconds the tree gets to exit after SIGTERM
        self.log = log
        self.counts = {}            # (audit arch, nr) -> calls
        self.main = None            # the program's pid
        self.main_status = None
        self.execed = False         # the program's execve succeeded
        self.tracees = set()        # every traced task id seen and not yet gone
        self.killing = False        # the deadline passed: every tracee is killed
        self.deadline = None        # monotonic time the tree must be gone by, once asked to stop
        self.info = None
        self._err_r = None
        self._execve = {}           # audit arch -> execve's number there
        # PTRACE_SYSCALL until the first seccomp event shows the child's filter works
        self.restart_request = shim.PTRACE_SYSCALL
        self.seccomp_stops = seccomp_stops   # False: always PTRACE_SYSCALL (tests)

    # -- start ------------------------------------------------------------------

    def start(self):
        """Fork the program, stopped before its execve, and seize it. Raises TraceError."""
        try:
            shim.ffi_and_lib()
        except (ImportError, OSError) as e:
            raise TraceError(f"the tracer needs cffi (its _cffi_backend), not usable: {e}") from None
        self.info = shim.SyscallInfo()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # never inherited as ignored
        original_mask = signal.pthread_sigmask(signal.SIG_BLOCK, WAKE)
        shim.set_child_subreaper(True)
        self._err_r, err_w = os.pipe()
        filter_calls = _filter_calls() if self.seccomp_stops else None
        pid = os.fork()
        if pid == 0:
            self._child(original_mask, err_w, filter_calls)
        os.close(err_w)
        self.main = pid
        _, status = os.waitpid(pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            self.main_status = status
            raise TraceError(self._start_failure(), EXEC_FAILED)
        try:
            shim.ptrace(shim.PTRACE_SEIZE, pid, 0, OPTIONS)
        except OSError as e:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TraceError(f"cannot trace {os.fsdecode(self.argv[0])}: ptrace: {e.strerror}") from None
        self.tracees.add(pid)
        os.kill(pid, signal.SIGCONT)
        return pid

    def _child(self, original_mask, err_w, filter_calls):
        """In the forked child: wait to be seized, then exec. Never returns."""
        try:
            shim.set_pdeathsig(signal.SIGKILL)   # tracer gone before seizing: don't run
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):   # Python ignores these
                signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGSTOP)
            if filter_calls:
                _load_trace_filter(*filter_calls)
            signal.pthread_sigmask(signal.SIG_SETMASK, original_mask)
            os.execve(self.path, self.argv, self.env)
        except BaseException as e:  # noqa: BLE001 - the child must never return
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            # nobody is left to tell if this write fails: exit all the same
            with contextlib.suppress(BaseException):
                os.write(err_w, reason.encode("utf-8", "replace")[:1024])
        os._exit(EXEC_FAILED)

    def _start_failure(self):
        reason = ""
        if self._err_r is not None:
            try:
                reason = os.read(self._err_r, 4096).decode("utf-8", "replace")
            except OSError:
                pass
        return f"cannot execute {os.fsdecode(self.path)}: {reason or 'the child exited before exec'}"

    # -- the loop -----------------------------------------------------------------

    def run(self):
        """Trace until the last traced process is gone; the program's wait status.
        Raises TraceError when the program never ran (its execve failed)."""
        handled = 0
        while True:
            try:
                pid, status = shim.waitpid(-1, shim.WALL | os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                self._sleep()
                continue
            self._on_event(pid, status)
            handled += 1
            if handled % SIGNAL_POLL_EVERY == 0:
                self._poll_signals()
                self._check_deadline()
        if not self.execed:
            raise TraceError(self._start_failure(), EXEC_FAILED)
        return self.main_status

    def _on_event(self, pid, status):
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.tracees.discard(pid)
            if pid == self.main:
                self.main_status = status
            return
        if not os.WIFSTOPPED(status):
            return
        self.tracees.add(pid)   # a new tracee may report before its parent's event
        if self.killing:
            os.kill(pid, signal.SIGKILL)
        sig, event = os.WSTOPSIG(status), status >> 16
        if sig == SYSCALL_STOP:
            self._count(pid)
            self._restart(pid, 0)
        elif event == shim.PTRACE_EVENT_SECCOMP:
            self.restart_request = shim.PTRACE_CONT   # the filter works: one stop per call
            self._count(pid)
            self._restart(pid, 0)
        elif event == 0:                        # signal-delivery stop: deliver it
            self._restart(pid, sig)
        elif event in NEW_TRACEE_EVENTS:
            self.tracees.add(self._event_message(pid))
            self._restart(pid, 0)
        elif event == shim.PTRACE_EVENT_EXEC:
            former = self._event_message(pid)  # a thread that execs takes the leader's id
            if former != pid:
                self.tracees.discard(former)
            if pid == self.main:
                self.execed = True
            self._restart(pid, 0)
        elif event == shim.PTRACE_EVENT_STOP and sig in GROUP_STOP_SIGNALS:
            self._ptrace(shim.PTRACE_LISTEN, pid)   # stay stopped as asked, until SIGCONT
        else:                                   # initial stop of a new tracee, or after LISTEN
            self._restart(pid, 0)

    def _count(self, pid):
        try:
            op, arch, nr = self.info.read(pid)
        except ProcessLookupError:
            return
        except OSError as e:
            raise TraceError(f"PTRACE_GET_SYSCALL_INFO failed ({e.strerror}): "
                             "the tracer needs Linux 5.3 or later") from None
        if op not in COUNTED_OPS:
            return
        if not self.execed and nr != self._execve_number(arch):
            return   # the forked child's own steps before its execve are not the program's
        key = (arch, nr)
        self.counts[key] = self.counts.get(key, 0) + 1

    def _execve_number(self, audit_arch):
        if audit_arch not in self._execve:
            name = policy.arch_name(audit_arch)
            self._execve[audit_arch] = syscalls.numbers(name).get("execve") if name else None
        return self._execve[audit_arch]

    def _restart(self, pid, sig):
        self._ptrace(self.restart_request, pid, sig)

    def _ptrace(self, request, pid, data=0):
        try:
            shim.ptrace(request, pid, 0, data)
        except ProcessLookupError:
            pass   # killed meanwhile: its exit is reported next

    def _event_message(self, pid):
        try:
            return shim.ptrace_event_message(pid)
        except ProcessLookupError:
            return pid

    # -- signals --------------------------------------------------------------------

    def _sleep(self):
        """Nothing to reap: wait for a signal (SIGCHLD: a tracee stopped or exited)."""
        if self.deadline is None or self.killing:
            info = signal.sigwaitinfo(WAKE)
        else:
            info = signal.sigtimedwait(WAKE, max(0.0, self.deadline - time.monotonic()))
        if info is not None:
            self._on_signal(info.si_signo)
        self._check_deadline()

    def _check_deadline(self):
        if self.deadline is None or self.killing or time.monotonic() < self.deadline:
            return
        self.log(f"{os.fsdecode(self.argv[0])}[{self.main}] did not exit within "
                 f"{self.grace:g} s of the stop signal: killing the traced processes "
                 "(the policy lacks what it would have done on its way out)")
        self.kill_all()

    def _poll_signals(self):
        pending = signal.sigpending() & set(WAKE)
        for sig in pending:
            if signal.sigtimedwait([sig], 0) is not None:
                self._on_signal(sig)

    def _on_signal(self, sig):
        if sig in FORWARDED:
            self._forward(sig)
            if sig in STOP_REQUESTS and self.deadline is None:
                self.deadline = time.monotonic() + self.grace

    def _forward(self, sig):
        """To the program, like utrace; once it is gone, to what is left of its tree."""
        targets = [self.main] if self.main_status is None else sorted(self.tracees)
        for pid in targets:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_all(self):
        """SIGKILL every traced process; the loop then reaps them."""
        self.killing = True
        for pid in sorted(self.tracees):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _filter_calls():
    """(load the trace-all filter, set no_new_privs), prepared before fork."""
    program = shim.FilterProgram(TRACE_EVERY_SYSCALL)
    return shim.seccomp_call(program), shim.PrctlCall(shim.PR_SET_NO_NEW_PRIVS, 1), program


def _load_trace_filter(load, no_new_privs, _program):
    """In the child: the filter, with no_new_privs only when the kernel insists (EACCES:
    no CAP_SYS_ADMIN). Not loadable at all: the tracer stays with PTRACE_SYSCALL."""
    try:
        load()
    except OSError:
        try:
            no_new_privs()
            load()
        except OSError:
            pass
