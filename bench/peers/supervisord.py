"""supervisord (PyPI `supervisor`): one Python process, unix socket only."""

import os

from .base import Peer, have_module, python

PROGRAM = """
[program:{name}]
command={command}
autostart=true
autorestart=true
; 0: a program that exits at once counts as started, so it is restarted
; straight away instead of being backed off and given up (FATAL)
startsecs=0
startretries=1000000
stopsignal=TERM
stopwaitsecs=5
stdout_logfile=NONE
stderr_logfile=NONE
"""


class Supervisord(Peer):
    name = "supervisord"

    @classmethod
    def missing(cls):
        return have_module("supervisor")

    @classmethod
    def version(cls):
        from importlib.metadata import version

        return version("supervisor")

    def start(self, services):
        conf = os.path.join(self.workdir, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(self.config(services))
        self.launch([python(), "-m", "supervisor.supervisord", "-c", conf], "supervisord.out")

    def config(self, services):
        w = self.workdir
        # No [inet_http_server]: the control server listens on a unix socket only.
        head = f"""
[unix_http_server]
file={w}/supervisor.sock

[supervisord]
nodaemon=true
logfile={w}/supervisord.log
pidfile={w}/supervisord.pid
childlogdir={w}
loglevel=warn
minfds=1024

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
"""
        body = "".join(
            PROGRAM.format(name=s.name, command=" ".join(s.argv)) for s in services)
        return head + body
