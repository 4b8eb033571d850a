"""A jail's supervisor, as a fresh small interpreter (`python3 -I -S jailwatch.py`).

The forked supervisor (process/jail.py) execs this once the jailed program is
forked: a copy of the daemon kept alive for the program's whole life would hold
every page the daemon later changes. It is exec'd with every signal blocked and
inherits the program as its child:

    jailwatch.py CHILD_PID TERM_TIMEOUT [NAME]

It forwards every catchable signal but CHLD, PIPE, SEGV and ALRM to the program,
SIGKILLs it TERM_TIMEOUT seconds after a SIGTERM (a pid-namespace init ignores
signals it has no handler for) and exits with its status: the program's exit
code, or 128+N when signal N ended it (ujail's rules). Standard library only.
"""

import _signal as signal
import os
import sys

NOT_FORWARDED = ("SIGCHLD", "SIGPIPE", "SIGSEGV", "SIGALRM", "SIGKILL", "SIGSTOP")


def watch(child, term_timeout, unblock=True):
    """Forward, escalate, reap; returns the exit status to leave with."""

    def forward(sig, frame):
        try:
            os.kill(child, sig)
        except OSError:
            pass
        if sig == signal.SIGTERM:
            signal.alarm(max(term_timeout, 1))

    def escalate(sig, frame):
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass

    skip = {getattr(signal, name) for name in NOT_FORWARDED}
    for sig in signal.valid_signals():
        if sig not in skip and 0 < sig < signal.NSIG:
            try:
                signal.signal(sig, forward)
            except (OSError, ValueError):
                pass  # e.g. the realtime signals libc keeps for itself
    signal.signal(signal.SIGALRM, escalate)
    if unblock:
        signal.pthread_sigmask(signal.SIG_SETMASK, ())  # what arrived meanwhile runs now
    while True:
        _, raw = os.waitpid(child, 0)
        if os.WIFEXITED(raw):
            return os.WEXITSTATUS(raw)
        if os.WIFSIGNALED(raw):
            return 128 + os.WTERMSIG(raw)


def main(argv):
    child, term_timeout = int(argv[1]), int(argv[2])
    if len(argv) > 3 and argv[3]:
        try:
            with open("/proc/self/comm", "w") as f:
                f.write(argv[3][:15])
        except OSError:
            pass
    status = 1
    try:
        status = watch(child, term_timeout)
    except BaseException:  # noqa: BLE001 - the program must not outlive us unwatched
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass
    os._exit(status)


if __name__ == "__main__":
    main(sys.argv)
