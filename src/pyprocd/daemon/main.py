"""`pyprocd [-s SOCKET] [--object NAME] [--syslog PATH]`: the supervisor, in the foreground.

One loop, one ServiceManager, the `service` object on the bus. SIGTERM/SIGINT
stop every instance (term_timeout, then SIGKILL) before the process exits.

Structure, for the options still to come (--detach/--pidfile/--monitor,
UCI settings): `parse_args(argv)` -> options, `build_daemon(options)` -> a
Daemon wired together but not running, `Daemon.run()` -> exit code. Imports
are lazy, so a process that only parses arguments (or a --monitor parent)
stays small.
"""

import _signal as signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)
import sys

from pyprocd.common import LOG_DEBUG, LOG_WARNING

DEFAULT_SOCKET = "/var/run/ubus/ubus.sock"
DEFAULT_SYSLOG = "/dev/log"
STOP_GRACE = 120.0  # seconds: after this, a stuck shutdown gives up waiting


# option -> (attribute, default, help). Parsed by hand: argparse costs the
# daemon ~1.5 MB of RAM for the rest of its life (gettext, locale, shutil, ...).
OPTIONS = {
    "--socket": ("socket", DEFAULT_SOCKET, "ubus socket path"),
    "--object": ("object", "service", "name of the ubus object"),
    "--syslog": ("syslog", DEFAULT_SYSLOG, "syslog socket for instance output and daemon messages"),
    # UCI: pyprocd's own configuration <confdir>/pyprocd; what the
    # command line gives explicitly wins over it
    "--confdir": ("confdir", "/etc/config", "UCI config directory (settings and declared services)"),
    # procd runs `<initd-dir>/<service> running` after a `set` with instances
    "--initd-dir": ("initd_dir", "/etc/init.d", "init scripts, for their `running` callback"),
}
SHORT = {"-s": "--socket"}


class Options:
    """Parsed command line; `given` names the options the command line set."""

    def __init__(self):
        for attr, default, _help in OPTIONS.values():
            setattr(self, attr, default)
        self.given = set()


def usage():
    from pyprocd.daemon.lifecycle import USAGE as lifecycle_usage  # taken off argv first

    lines = ["usage: pyprocd [-s SOCKET] [--object NAME] [--syslog PATH] [--confdir DIR]",
             "       pyprocd bus|ubus|uci|reload-config ...", "", "procd-compatible supervisor", "",
             "options:", "  -h, --help             show this help and exit"]
    for flag, (attr, default, text) in OPTIONS.items():
        short = next((k + ", " for k, v in SHORT.items() if v == flag), "")
        lines.append(f"  {short + flag + ' ' + attr.upper():<22} {text} (default {default})")
    return "\n".join(lines) + "\n\n" + lifecycle_usage


class UsageError(SystemExit):
    def __init__(self, message):
        sys.stderr.write(f"pyprocd: {message}\nTry 'pyprocd --help'.\n")
        super().__init__(2)  # argparse's code: --detach reports it to the caller


def parse_args(argv):
    options = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            sys.stdout.write(usage())
            raise SystemExit(0)
        if arg == "--":
            break
        flag, eq, value = arg.partition("=") if arg.startswith("--") else (arg[:2], "", arg[2:])
        flag = SHORT.get(flag, flag)
        if flag not in OPTIONS:
            raise UsageError(f"unknown option {arg!r}")
        if not eq and not value:
            if not args:
                raise UsageError(f"option {flag} needs a value")
            value = args.pop(0)
        attr = OPTIONS[flag][0]
        setattr(options, attr, value)
        options.given.add(attr)
    if args:
        raise UsageError(f"unexpected argument {args[0]!r}")
    return options


class Daemon:
    """The wired-up supervisor. `on_ready()` runs once the object is on the bus."""

    def __init__(self, loop, manager, client, api, log, closers=()):
        self.loop = loop
        self.manager = manager
        self.client = client
        self.api = api
        self.log = log
        self.on_ready = None
        self._closers = list(closers)
        self._survival = None
        self._life = None
        self.stopping = False
        # True only once stop_all() saw every instance gone: the one exit
        # after which there is nothing for a successor to take back.
        self.stopped_cleanly = False
        self._published_once = False
        self.exit_code = 0

    def run(self):
        if self._survival is not None:
            self._survival.restore()
            self._survival.install()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self.shutdown)
        # SIGHUP keeps the disposition we inherited (procd under nohup: ignored,
        # and instances inherit that); a reload action may be bound to it later.
        self.client.on_connect = lambda: self.log("connected to ubus")
        self.client.on_disconnect = lambda: self.log("lost ubus, reconnecting")
        self.api.publish(self._published)
        self.client.start()
        # Start-up is over: the import system's listings of every directory
        # on sys.path (a few hundred names) would stay for the daemon's life;
        # a rare lazy import later lists its directory again.
        sys.path_importer_cache.clear()
        try:
            self.loop.run()
        finally:
            self.close()
        return self.exit_code

    def _published(self, status):
        if status:
            name = self.api.obj.name
            self.log(f"cannot register ubus object {name!r}: status {status}"
                     + (" (taken: is procd running? see --object)" if status == 2 else ""))
            if not self._published_once:  # at start-up: give up instead of idling unseen
                self.exit_code = 1
                self.shutdown()
            return
        if not self._published_once:
            self._published_once = True
            if self.on_ready is not None:
                self.on_ready()
            if self._life is not None:
                self._life.notify_ready()

    def attach_survival(self, survival, life):
        """Crash survival and live re-exec (`survival`), readiness and the
        pidfile (`life`); run() takes back what the previous daemon ran
        before anything is served."""
        self._survival = survival
        self._life = life

    def shutdown(self, signum=None):
        """Stop all instances, then leave the loop (a second signal does not hurry it)."""
        if self.stopping:
            return
        self.stopping = True
        self.log("stopping all instances")
        self.manager.stop_all(self._all_stopped)
        self.loop.call_later(STOP_GRACE, self.loop.stop)

    def _all_stopped(self):
        self.stopped_cleanly = True
        self.loop.stop()

    def close(self):
        self.client.close()
        # Only a shutdown that stopped everything forgets the state. After a
        # crash (an exception unwinding run()) the next daemon needs it, also
        # when nothing ran: stopped, failed and waiting-to-respawn instances
        # are state too.
        if self.stopped_cleanly:
            if self._survival is not None:
                self._survival.finish()
            if self._life is not None:
                self._life.finish()
        for close in self._closers:
            close()
        self.loop.close()


def become_subreaper(log):
    """Orphaned descendants of our services become our children, so that
    double-forking services are still reaped here and can be followed."""
    try:
        # libc, not shim or harden: their hardening code is not needed here
        from pyprocd.process import libc

        libc.set_child_subreaper(True)
    except (ImportError, OSError) as e:
        log(f"cannot become a child subreaper ({e}): daemonising services are not followed",
            LOG_WARNING)
        return False
    return True


def raise_nofile_limit(log):
    """Soft RLIMIT_NOFILE up to the hard limit: every instance costs the
    daemon up to four pipe ends while it starts and two for its life, and a
    distribution's soft default (1024, or less) is reached by a few hundred
    instances. Instances get the limit they ask for (`limits`), or ours."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or (hard != resource.RLIM_INFINITY and soft > hard):
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as e:
        log(f"cannot raise the open-file limit from {soft} to {hard}: {e}", LOG_WARNING)


def ensure_stdio():
    """fds 0-2 must exist: otherwise the first pipe we open would become a
    child's stdin/stdout and instance setup would dup2 over it."""
    import os

    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def build_daemon(options, life=None):
    """The composition root: every part built here and wired by constructor
    arguments (the state file is the manager's recorder, the manager gets the
    trigger engine, ...). Returns the Daemon, not yet running."""
    from pyprocd.api.service import Method, ServiceApi
    from pyprocd.bus.client import UbusClient
    from pyprocd.core.manager import ServiceManager
    from pyprocd.core.triggers import TriggerEngine
    from pyprocd.daemon import settings as uci_settings
    from pyprocd.daemon.state import StateFile
    from pyprocd.daemon.survival import Survival
    from pyprocd.loop import Loop
    from pyprocd.process.host import Host
    from pyprocd.process.logsink import DaemonLog, SyslogSink

    if life is None:  # built only (tests, measurements): no state file
        from pyprocd.daemon import lifecycle

        life = lifecycle.Lifecycle(lifecycle.Options())
        life.opts.state_file = None
    # UCI settings fill the options the command line did not give
    settings = uci_settings.fill_options(options, {"socket": DEFAULT_SOCKET, "object": "service",
                                                   "syslog": DEFAULT_SYSLOG})
    # (`log` is bound below: the sink needs the loop first.)
    loop = Loop(on_orphan_reaped=lambda pid, status: log(
        f"reaped orphaned process {pid} (status {status})", LOG_DEBUG))
    sink = SyslogSink(options.syslog, loop=loop)
    log = DaemonLog(sink=sink)
    raise_nofile_limit(log)
    env = life.instance_environment()
    host = Host(loop, sink, base_env=env, log=log, subreaper=become_subreaper(log))
    host.jail_sockets = {"ubus": options.socket}  # what a jail's `ubus` binds inside
    host.use_ujail = settings.jail == "ujail"
    if settings.jail not in (None, "builtin", "ujail"):
        log(f"pyprocd: unknown jail setting {settings.jail!r}, using the built-in jail",
            LOG_WARNING)
    # Which daemon this is: a state file written by another one (a test run,
    # a second daemon on a host) is never taken over.
    identity = f"{options.socket} {options.object}"
    state_path = life.opts.state_file
    state_file = (StateFile(loop, state_path, log=lambda m: log(m, LOG_WARNING),
                            identity=identity) if state_path else None)
    # Trigger scripts start like instances: our start-up environment, default
    # signal dispositions.
    triggers = TriggerEngine(loop, log=log, env=env, spawn=host.start_script)
    manager = ServiceManager(loop, host, log=log, recorder=state_file, triggers=triggers,
                             facts=host,
                             respawn_defaults=options.respawn_defaults,
                             initd_dir=options.initd_dir)
    client = UbusClient(loop, options.socket, log=log)
    # `reexec` (beyond procd) is the daemon's own method; `survival` is built
    # below and looked up when the method is called.
    reexec = Method("reexec", {}, lambda mgr, args: survival.reexec_method(mgr, args),
                    changes_state=False, listed=False)
    api = ServiceApi(client, manager, options.object, log=log, extra=(reexec,))
    from pyprocd.api.system import SystemApi  # procd's read-only `system` (taken: procd has it)

    SystemApi(client, log=log).publish()
    daemon = Daemon(loop, manager, client, api, log, closers=[sink.close])
    survival = Survival(loop, manager, life, sink=sink, log=log, state_file=state_file,
                        is_stopping=lambda: daemon.stopping, before_exec=[client.close])
    daemon.attach_survival(survival, life)
    # UCI and triggers: `watch`, declared services
    uci_settings.attach(loop, manager, options.confdir, log, call=api.call)
    uci_settings.attach_bus(client, triggers)
    return daemon


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ensure_stdio()
    # lifecycle: --detach/--pidfile/--monitor/--state-file come off argv
    # and act before the heavy imports, so a --monitor parent stays small
    import os

    from pyprocd.daemon import lifecycle

    life_options, argv = lifecycle.parse_args(argv)
    started_in = os.getcwd()
    life = lifecycle.Lifecycle(life_options)
    life.start()  # detach/monitor/pidfile; returns in the daemon process only
    # Parsed in the daemon (argparse and the settings stay out of the monitor);
    # a usage error still reaches the caller: stderr is attached until ready,
    # and --detach exits with the daemon's code.
    options = parse_args(argv)
    for name in ("socket", "syslog", "confdir", "initd_dir"):  # relative to where we were started
        if getattr(options, name, None):
            setattr(options, name, os.path.join(started_in, getattr(options, name)))
    return build_daemon(options, life).run()
