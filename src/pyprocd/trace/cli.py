"""`pyprocd trace [-f FILE] [-d DIR] [-t SECONDS] [--] COMMAND [ARGS...]`

Runs COMMAND traced (see pyprocd.trace) and, once it and every process it started are
gone, writes the seccomp whitelist of every syscall they made, in utrace's format:

  -f FILE     the policy file (else $SECCOMP_FILE, else DIR/<basename COMMAND>.<pid>.json)
  -d DIR      directory for the default name (default /tmp, as utrace)
  -t SECONDS  the supervisor's stop timeout: after a SIGTERM the traced processes get
              this long, less a margin, before the tracer kills them (default 5)
  -p N        accepted and ignored (utrace's leftover option)

Signals a supervisor or a terminal sends (TERM, INT, HUP, QUIT, USR1, USR2, ALRM,
WINCH, job control...) go on to the program; after TERM or INT its tree has until the
-t deadline to exit.

Options stop at the first non-option (musl getopt, as on OpenWrt); `--` is optional.
COMMAND is looked up in the PATH of the environment it gets, like an untraced instance.
The program gets exactly the environment the tracer was started with.

Exit status: the program's (128+N if killed by signal N); 127 when it could not be
started; 1 when it could not be traced or the policy could not be written; 2 for a
usage error; 255 when no COMMAND is given (as utrace).
"""

import os
import sys

from pyprocd.common import LOG_DAEMON, LOG_ERR, LOG_NOTICE
from pyprocd.trace import policy

DEFAULT_DIR = "/tmp"
DEFAULT_TERM_TIMEOUT = 5.0
DEFAULT_PATH = b"/usr/sbin:/usr/bin:/sbin:/bin"
NO_PROGRAM = 255
USAGE = 2


class UsageError(Exception):
    pass


class Options:
    def __init__(self):
        self.file = None
        self.directory = DEFAULT_DIR
        self.term_timeout = DEFAULT_TERM_TIMEOUT
        self.command = []


def parse(argv):
    """Options, getopt style: `-fFILE` or `-f FILE`; stops at `--` or a non-option."""
    options, rest = Options(), list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        arg = rest.pop(0)
        if arg == "--":
            break
        if arg in ("-h", "--help"):
            raise UsageError(__doc__)
        flag, value = arg[:2], arg[2:]
        if flag not in ("-f", "-d", "-t", "-p"):
            raise UsageError(f"unknown option {arg}")
        if not value:
            if not rest:
                raise UsageError(f"option {flag} needs a value")
            value = rest.pop(0)
        if flag == "-f":
            options.file = value
        elif flag == "-d":
            options.directory = value
        elif flag == "-t":
            try:
                options.term_timeout = float(value)
            except ValueError:
                raise UsageError(f"-t needs a number of seconds, not {value!r}") from None
            if not options.term_timeout > 0:
                raise UsageError("-t needs a positive number of seconds")
    options.command = rest
    return options


def grace_period(term_timeout):
    """How long the traced processes get after SIGTERM: the supervisor's timeout less a
    margin, so that the tracer still reaps them and writes the policy before its own
    SIGKILL comes."""
    return max(term_timeout - 1.0, term_timeout / 2)


def find_program(name, env):
    """The path execve needs: `name` itself when it holds a '/', else the first
    executable file of that name in the environment's PATH (None when there is none)."""
    if "/" in name:
        return name
    for directory in env.get(b"PATH", DEFAULT_PATH).split(b":"):
        candidate = os.path.join(os.fsdecode(directory) or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class Log:
    """Messages to stderr; when stderr is /dev/null (an instance without `stderr`),
    to syslog instead, as utrace's ulog does when stderr is no terminal."""

    def __init__(self):
        self.sink = None
        if _stderr_is_devnull():
            from pyprocd.process.logsink import SyslogSink

            self.sink = SyslogSink()
        self.ident = f"pyprocd-trace[{os.getpid()}]"

    def __call__(self, message, priority=LOG_ERR):
        if self.sink is not None:
            self.sink.send(LOG_DAEMON | priority, self.ident, message)
        else:
            print(f"pyprocd trace: {message}", file=sys.stderr, flush=True)


def _stderr_is_devnull():
    try:
        err, null = os.fstat(2), os.stat(os.devnull)
    except OSError:
        return False
    return (err.st_rdev, err.st_ino, err.st_dev) == (null.st_rdev, null.st_ino, null.st_dev)


def exit_code(status):
    if status is None:
        return 1
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def main(argv):
    log = Log()
    try:
        options = parse(argv)
    except UsageError as e:
        log(str(e))
        return USAGE
    if not options.command:
        log("no command to trace (usage: pyprocd trace [options] -- COMMAND [ARGS...])")
        return NO_PROGRAM

    from pyprocd.process.spawn import original_environment

    env = original_environment()   # not os.environ: Python edits that at start-up
    path = find_program(options.command[0], env)
    if path is None:
        log(f"{options.command[0]}: command not found")
        return 127
    target = options.file or os.fsdecode(env.get(b"SECCOMP_FILE", b"")) or None
    try:
        policy.check_writable(target or os.path.join(options.directory, "probe"))
    except OSError as e:
        where = os.path.dirname(target) if target else options.directory
        log(f"cannot write the policy into {where or '.'}: {e.strerror}")
        return 1
    return _trace(options, path, env, target, log)


def _trace(options, path, env, target, log):
    from pyprocd.trace.tracer import TraceError, Tracer

    argv = [os.fsencode(a) for a in options.command]
    tracer = Tracer(os.fsencode(path), argv, env, grace_period(options.term_timeout), log)
    try:
        pid = tracer.start()
        status = tracer.run()
    except TraceError as e:
        tracer.kill_all()
        _reap_all()
        log(str(e))
        return e.exit_code
    names, unnamed = policy.named_counts(tracer.counts)
    for entry in unnamed:
        log(f"{entry}; it is not in the policy, which is incomplete without it")
    target = target or policy.default_path(options.directory, options.command[0], pid)
    try:
        policy.write(target, policy.policy_text([name for name, _ in names]))
    except OSError as e:
        log(f"cannot write the policy to {target}: {e.strerror}")
        return 1
    log(f"saving syscall trace to {target}", LOG_NOTICE)
    return exit_code(status)


def _reap_all():
    """After a failure: wait for whatever the tracer still has (all killed)."""
    from pyprocd.process import shim

    while True:
        try:
            shim.waitpid(-1, shim.WALL)
        except InterruptedError:
            continue
        except OSError:
            return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
