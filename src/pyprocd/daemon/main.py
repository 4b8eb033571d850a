"""`pyprocd [-s SOCKET] [--object NAME] [--syslog PATH]`: the supervisor, in the foreground.

One loop, one ServiceManager, the `service` object on the bus. SIGTERM/SIGINT
stop every instance (term_timeout, then SIGKILL) before the process exits.

Structure, for the options still to come (--detach/--pidfile/--monitor,
UCI settings): `parse_args(argv)` -> options, `build_daemon(options)` -> a
Daemon wired together but not running, `Daemon.run()` -> exit code. Imports
are lazy, so a process that only parses arguments (or a --monitor parent)
stays small.
"""

import argparse
import signal
import sys

DEFAULT_SOCKET = "/var/run/ubus/ubus.sock"
DEFAULT_SYSLOG = "/dev/log"
STOP_GRACE = 120.0  # seconds: after this, a stuck shutdown gives up waiting


def parse_args(argv):
    from pyprocd.daemon.lifecycle import USAGE as lifecycle_usage  # issue 6: taken off argv first

    parser = argparse.ArgumentParser(prog="pyprocd", description="procd-compatible supervisor",
                                     epilog=lifecycle_usage,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-s", "--socket", default=DEFAULT_SOCKET, help="ubus socket path")
    parser.add_argument("--object", default="service",
                        help="name of the ubus object (default: service)")
    parser.add_argument("--syslog", default=DEFAULT_SYSLOG,
                        help="syslog socket for instance output and daemon messages")
    # issue 4 (UCI): pyprocd's own configuration <confdir>/pyprocd; what the
    # command line gives explicitly wins over it
    parser.add_argument("--confdir", default="/etc/config",
                        help="UCI config directory (settings and declared services)")
    options = parser.parse_args(argv)
    from pyprocd.daemon.settings import given_options

    options.given = given_options(parser, argv)
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
        self._stopping = False
        self._published_once = False
        self.exit_code = 0

    def run(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self.shutdown)
        # SIGHUP keeps the disposition we inherited (procd under nohup: ignored,
        # and instances inherit that); a reload action may be bound to it later.
        self.client.on_connect = lambda: self.log("connected to ubus")
        self.client.on_disconnect = lambda: self.log("lost ubus, reconnecting")
        self.api.publish(self._published)
        self.client.start()
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

    def shutdown(self, signum=None):
        """Stop all instances, then leave the loop (a second signal does not hurry it)."""
        if self._stopping:
            return
        self._stopping = True
        self.log("stopping all instances")
        self.manager.stop_all(self.loop.stop)
        self.loop.call_later(STOP_GRACE, self.loop.stop)

    def close(self):
        self.client.close()
        for close in self._closers:
            close()
        self.loop.close()


def build_daemon(options):
    from pyprocd.api.service import ServiceApi
    from pyprocd.bus.client import UbusClient
    from pyprocd.core.manager import ServiceManager
    from pyprocd.daemon import settings as uci_settings
    from pyprocd.loop import Loop
    from pyprocd.process.logsink import DaemonLog, SyslogSink
    from pyprocd.process.spawn import Spawner

    # issue 4 (UCI): settings fill the options the command line did not give
    uci_settings.fill_options(options, {"socket": DEFAULT_SOCKET, "object": "service",
                                        "syslog": DEFAULT_SYSLOG})
    loop = Loop()
    sink = SyslogSink(options.syslog)
    log = DaemonLog(sink=sink)
    spawner = Spawner(loop, sink, log=log)
    manager = ServiceManager(loop, spawner, log=log)
    client = UbusClient(loop, options.socket, log=log)
    api = ServiceApi(client, manager, options.object, log=log)
    daemon = Daemon(loop, manager, client, api, log, closers=[sink.close])
    # issue 4 (UCI, triggers): trigger engine, `watch`, declared services
    uci_settings.attach(loop, manager, options.confdir, log, options.respawn_defaults)
    uci_settings.attach_bus(client, manager.triggers)
    return daemon


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # issue 6 (lifecycle): --detach/--pidfile/--monitor/--state-file come off argv
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
    for name in ("socket", "syslog", "confdir"):  # relative to where we were started
        if getattr(options, name, None):
            setattr(options, name, os.path.join(started_in, getattr(options, name)))
    daemon = build_daemon(options)
    # issue 6: crash survival, live re-exec, revive, readiness for --detach
    from pyprocd.daemon.survival import attach as attach_lifecycle

    attach_lifecycle(daemon, life, options)
    return daemon.run()
