"""An in-process supervisor for tests: Loop + Spawner + ServiceManager with real children."""

import os
import signal
import socket

from pyprocd.api.service import call_service
from pyprocd.core.manager import ServiceManager
from pyprocd.loop import Loop
from pyprocd.process.host import Host
from pyprocd.process.logsink import DaemonLog, SyslogSink


class SyslogReader:
    """A datagram socket standing in for /dev/log."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []

    def drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                return self.messages

    def close(self):
        self.sock.close()


class Supervisor:
    def __init__(self, tmp_path, spawner_options=None, **kwargs):
        self.loop = Loop()
        self.loop.strict = True
        self.syslog = SyslogReader(str(tmp_path / "log.sock"))
        self.sink = SyslogSink(self.syslog.path, loop=self.loop)
        self.log = DaemonLog(keep=10000, sink=None)
        self.log.sink = _Quiet()
        self.spawner = Host(self.loop, self.sink, log=self.log, **(spawner_options or {}))
        kwargs.setdefault("facts", self.spawner)
        self.mgr = ServiceManager(self.loop, self.spawner, log=self.log, **kwargs)
        self.notifications = []
        self.mgr.notify = lambda t, p: self.notifications.append((t, p))

    def call(self, method, msg=None):
        return call_service(self.mgr, method, msg)

    def pump(self, seconds):
        self.loop.run_until(lambda: False, seconds)

    def wait(self, condition, timeout=30):
        return self.loop.run_until(condition, timeout)

    def inst(self, service, instance):
        return self.mgr.services[service].instances[instance]

    def close(self):
        """Stop everything we started and make sure nothing is left."""
        done = []
        self.mgr.stop_all(lambda: done.append(True))
        if not self.loop.run_until(lambda: done, 60):
            for pid in self.mgr.running_pids():
                os.kill(pid, signal.SIGKILL)
            self.loop.run_until(lambda: done, 30)
        self.loop.close()
        self.syslog.close()
        self.sink.close()


class _Quiet:
    def send(self, priority, ident, message):
        pass
