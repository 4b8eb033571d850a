"""Triggers: procd's json_script conditions and the global `run_script` queue.

A trigger is `[event_type, script, delay_ms?]`, attached to a service or to
one instance. `event(type, data)` runs every matching trigger's script with
the event's top-level string fields as variables; each `run_script` it
reaches becomes a command, keyed by its exact argv, that goes through one
global queue (spec §9.3):

* not pending        -> wait `delay` ms, then queue for running;
* waiting            -> re-arm to the full delay if less is left (extend, never shorten);
* queued to run      -> nothing (it will run with this argv anyway);
* running            -> remember one extra run; further events collapse into it.
  When the run ends, the extra run waits out its delay like a new event.

Commands run strictly one at a time, stdin/stdout/stderr on /dev/null,
exit status ignored, no time limit (as procd). Children are spawned with
posix_spawnp and reaped through the loop.

Beyond procd, the core feeds `instance.start/stop/respawn/fail` here too.
"""

import os
import stat
from _collections import deque  # C module: `collections` costs the daemon ~0.3 MB

from pyprocd.common import LOG_DEBUG, LOG_ERR, LOG_NOTICE, LOG_WARNING

DEFAULT_DELAY_MS = 1  # procd: a trigger without delay fires after 1 ms


class ScriptError(Exception):
    """A malformed condition: logged, and the enclosing `if` is skipped."""


class _Return(Exception):
    """`["return"]`: stop processing this script."""


# -- json_script ------------------------------------------------------------------


def substitute(pattern, variables):
    """%var% substitution as libubox's eval_string: %% -> %, unknown -> ''."""
    pieces = pattern.split("%")
    out = []
    for index, piece in enumerate(pieces):
        is_var = index % 2 == 1
        if not is_var:
            out.append(piece)
        elif piece:
            out.append(variables.get(piece, ""))
        else:
            out.append("%")
    # As in libubox, text after an unmatched last '%' is looked up as a variable.
    return "".join(out)


_REGEX_CACHE = {}  # pattern -> Program, or None when it does not compile


def _regex_match(value, pattern):
    """procd: regexec(regcomp(pattern, REG_EXTENDED|REG_NOSUB), value) == 0.

    A pattern that does not compile is false, as in procd; one over the
    matcher's budget is refused: ScriptError, logged, the `if` skipped.
    """
    from pyprocd.core import ere  # lazily: most daemons never evaluate a regex

    try:
        if pattern in _REGEX_CACHE:
            program = _REGEX_CACHE[pattern]
        else:
            try:
                program = ere.compile(pattern)
            except ere.EreError:
                program = None
            if len(_REGEX_CACHE) < 256:
                _REGEX_CACHE[pattern] = program
        return program is not None and program.search(value)
    except ere.TooCostly as e:
        raise ScriptError(f"regex {pattern!r} refused: {e}") from None


class Script:
    """Runs one json_script block against a variable set.

    `on_command(name, args)` receives every non-builtin command with its
    arguments %var%-substituted; `on_error(message)` gets malformed parts.
    """

    def __init__(self, variables, on_command, on_error=None):
        self.vars = variables
        self.on_command = on_command
        self.on_error = on_error or (lambda message: None)

    def run(self, block):
        try:
            self.block(block)
        except _Return:
            pass

    def block(self, block):
        if type(block) is not list:
            self.on_error(f"Unexpected element type: {block!r}")
            return
        if block and type(block[0]) is str:
            self.command(block)
            return
        for element in block:
            self.block(element)

    def command(self, cmd):
        name = cmd[0]
        if name == "if":
            self._if(cmd)
        elif name == "case":
            self._case(cmd)
        elif name == "return":
            raise _Return()
        elif name == "include":
            self.on_error("include is not supported in triggers")
        else:
            args = [substitute(a, self.vars) if type(a) is str else a for a in cmd[1:]]
            self.on_command(name, args)

    def _if(self, cmd):
        cond = cmd[1] if len(cmd) > 1 else None
        then = cmd[2] if len(cmd) > 2 else None
        other = cmd[3] if len(cmd) > 3 and type(cmd[3]) is list else None
        if type(cond) is not list or type(then) is not list:
            return
        try:
            result = self.expr(cond)
        except ScriptError as e:
            self.on_error(str(e))
            return
        if result:
            self.block(then)
        elif other is not None:
            self.block(other)

    def _case(self, cmd):
        if len(cmd) < 3 or type(cmd[1]) is not str or type(cmd[2]) is not dict:
            return
        value = self.vars.get(cmd[1])
        if value is None:
            return
        branch = cmd[2].get(value)
        if branch is not None:
            self.block(branch)

    # -- conditions ------------------------------------------------------------

    def expr(self, expr):
        if type(expr) is not list or not expr or type(expr[0]) is not str:
            raise ScriptError(f"Unexpected element type: {expr!r}")
        handler = _EXPRESSIONS.get(expr[0])
        if handler is None:
            raise ScriptError(f"Unknown expression type: {expr[0]}")
        return handler(self, expr)

    def _eq_regex(self, expr, matcher):
        if len(expr) < 3 or type(expr[1]) is not str:
            raise ScriptError(f"{expr[0]} needs a variable and a value")
        value = self.vars.get(expr[1])
        if value is None:
            return False
        wanted = expr[2]
        if type(wanted) is str:
            return matcher(value, wanted)
        if type(wanted) is list:
            for item in wanted:
                if type(item) is not str:
                    raise ScriptError(f"{expr[0]}: list items must be strings")
                if matcher(value, item):
                    return True
            return False
        raise ScriptError(f"{expr[0]}: bad value type")

    def _eq(self, expr):
        return self._eq_regex(expr, lambda value, wanted: value == wanted)

    def _regex(self, expr):
        return self._eq_regex(expr, _regex_match)

    def _has(self, expr):
        names = expr[1] if len(expr) > 1 else None
        if type(names) is str:
            return names in self.vars
        if type(names) is list:
            for name in names:
                if type(name) is not str:
                    raise ScriptError("has: list items must be strings")
                if name in self.vars:
                    return True
            return False
        raise ScriptError("has needs a variable name")

    def _and(self, expr):
        return all(self.expr(sub) for sub in expr[1:])

    def _or(self, expr):
        return any(self.expr(sub) for sub in expr[1:])

    def _not(self, expr):
        if len(expr) < 2 or type(expr[1]) is not list:
            raise ScriptError("not needs a condition")
        return not self.expr(expr[1])

    def _isdir(self, expr):
        if len(expr) < 2 or type(expr[1]) is not str:
            raise ScriptError("isdir needs a path")
        try:
            return stat.S_ISDIR(os.stat(substitute(expr[1], self.vars)).st_mode)
        except OSError:
            return False


_EXPRESSIONS = {
    "eq": Script._eq,
    "regex": Script._regex,
    "has": Script._has,
    "and": Script._and,
    "or": Script._or,
    "not": Script._not,
    "isdir": Script._isdir,
}


def event_matches(pattern, event_type):
    """procd: a `.*` in the pattern makes everything before it a prefix."""
    cut = pattern.find(".*")
    if cut >= 0:
        return event_type.startswith(pattern[:cut])
    return event_type == pattern


class Trigger:
    __slots__ = ("delay_ms", "script", "type")

    def __init__(self, type_, script, delay_ms):
        self.type = type_
        self.script = script
        self.delay_ms = delay_ms


def parse_triggers(entries):
    """Valid `[type, script, delay?]` entries; malformed ones are skipped."""
    result = []
    if type(entries) is not list:
        return result
    for entry in entries:
        if type(entry) is not list or len(entry) < 2:
            continue
        type_, script = entry[0], entry[1]
        if type(type_) is not str or type(script) is not list:
            continue
        delay = entry[2] if len(entry) > 2 else 0
        if type(delay) is not int:
            delay = 0
        result.append(Trigger(type_, script, delay if delay > 0 else DEFAULT_DELAY_MS))
    return result


# -- the run_script queue -----------------------------------------------------------

WAITING, QUEUED, RUNNING = "waiting", "queued", "running"


class _Command:
    __slots__ = ("again_delay", "argv", "delay", "state", "timer")

    def __init__(self, argv):
        self.argv = argv
        self.state = None
        self.timer = None
        self.delay = 0.0
        self.again_delay = None  # set while running: one more run wanted


class TriggerEngine:
    def __init__(self, loop, log=None, spawn=None, env=None):
        self.loop = loop
        self.log = log or (lambda message, priority=LOG_NOTICE: None)
        self.env = env  # environment for scripts (None: the daemon's os.environ)
        self._spawn = spawn or self._posix_spawn
        self._triggers = {}  # (service, instance or None) -> [Trigger]
        self._commands = {}  # argv tuple -> _Command
        self._queue = deque()  # argv tuples ready to run, in order
        self._running = None  # (argv, pid) of the one running command
        self.watched = set()  # ubus object paths whose notifications are events
        self.on_watch = None  # callable(path): the bus layer subscribes to it
        # callable(service, instance) -> the instance's `watch` paths (the
        # daemon plugs in a lookup in the core); asked whenever an instance
        # is (re)submitted, which is when the core calls set_triggers.
        self.watches_of = None
        self.started = 0  # commands started so far (for status/tests)
        # callables(type, data) that see every event first (e.g. the daemon
        # re-reading its own UCI package on config.change)
        self.listeners = []

    # -- the core's interface ------------------------------------------------

    def set_triggers(self, service, instance, triggers):
        parsed = parse_triggers(triggers)
        key = (service, instance)
        if parsed:
            self._triggers[key] = parsed
        else:
            self._triggers.pop(key, None)
        if instance is not None and self.watches_of is not None:
            for path in self.watches_of(service, instance) or ():
                self.watch(path)

    def remove(self, service, instance=None):
        """Drop one instance's triggers, or (instance None) all of a service."""
        if instance is not None:
            self._triggers.pop((service, instance), None)
            return
        for key in [k for k in self._triggers if k[0] == service]:
            del self._triggers[key]

    def event(self, type_, data):
        if type(type_) is not str:
            return
        for listener in list(self.listeners):
            try:
                listener(type_, data)
            except Exception as e:  # noqa: BLE001 - a listener bug must not stop the triggers
                self.log(f"event listener failed on {type_}: {e}", LOG_ERR)
        variables = {}
        if type(data) is dict:
            variables = {k: v for k, v in data.items() if type(v) is str}
        for (service, instance), triggers in list(self._triggers.items()):
            for trigger in triggers:
                if event_matches(trigger.type, type_):
                    self._run_script(service, trigger, variables)

    # -- watched ubus objects --------------------------------------------------

    def watch(self, path):
        """An instance declared `watch PATH`: its notifications become events."""
        if type(path) is not str or path in self.watched:
            return
        self.watched.add(path)
        if self.on_watch is not None:
            self.on_watch(path)

    def notification(self, path, type_, data):
        """The bus layer calls this for every notification of a watched object."""
        self.event(type_, data)

    # -- scripts ----------------------------------------------------------------

    def _run_script(self, service, trigger, variables):
        def on_command(name, args):
            if name != "run_script":
                self.log(f"trigger of {service}: unsupported command {name}", LOG_DEBUG)
                return
            if not args or any(type(a) is not str for a in args):
                return
            self.request(tuple(args), trigger.delay_ms)

        def on_error(message):
            self.log(f"trigger of {service}: {message}", LOG_ERR)

        Script(variables, on_command, on_error).run(trigger.script)

    def request(self, argv, delay_ms):
        """Ask for one run of argv after delay_ms (debounced, coalesced)."""
        delay = max(delay_ms, DEFAULT_DELAY_MS) / 1000.0
        cmd = self._commands.get(argv)
        if cmd is None:
            cmd = self._commands[argv] = _Command(argv)
            self._wait(cmd, delay)
        elif cmd.state == WAITING:
            if cmd.timer.remaining() < delay:
                self._wait(cmd, delay)  # extend, never shorten
        elif cmd.state == RUNNING:
            cmd.again_delay = max(cmd.again_delay or 0.0, delay)
        # QUEUED: it is about to run with exactly this argv anyway.

    def _wait(self, cmd, delay):
        if cmd.timer is not None:
            cmd.timer.cancel()
        cmd.state = WAITING
        cmd.delay = delay
        cmd.timer = self.loop.call_later(delay, self._ready, cmd)

    def _ready(self, cmd):
        cmd.timer = None
        cmd.state = QUEUED
        self._queue.append(cmd.argv)
        self._next()

    def _next(self):
        while self._running is None and self._queue:
            argv = self._queue.popleft()
            cmd = self._commands[argv]
            cmd.state = RUNNING
            self.started += 1
            try:
                pid = self._spawn(list(argv))
            except OSError as e:
                self.log("trigger command {} failed: {}".format(" ".join(argv), e), LOG_WARNING)
                self._finished(cmd)
                continue
            self._running = (argv, pid)
            self.loop.watch_child(pid, lambda pid, status, cmd=cmd: self._exited(cmd))

    def _exited(self, cmd):
        self._running = None
        self._finished(cmd)
        self._next()

    def _finished(self, cmd):
        if cmd.again_delay is not None:
            delay, cmd.again_delay = cmd.again_delay, None
            self._wait(cmd, delay)
        else:
            del self._commands[cmd.argv]

    def _posix_spawn(self, argv):
        devnull = os.devnull
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, devnull, os.O_WRONLY, 0),
        ]
        env = self.env if self.env is not None else os.environ
        return os.posix_spawnp(argv[0], argv, env, file_actions=actions)

    # -- introspection / shutdown ---------------------------------------------------

    def pending(self):
        """argv -> state for every command not yet finished."""
        return {argv: cmd.state for argv, cmd in self._commands.items()}

    def idle(self):
        return not self._commands

    def close(self):
        """Cancel waiting commands (daemon shutdown); a running one is left alone."""
        for argv, cmd in list(self._commands.items()):
            if cmd.timer is not None:
                cmd.timer.cancel()
            if cmd.state != RUNNING:
                del self._commands[argv]
            else:
                cmd.again_delay = None
        self._queue.clear()
