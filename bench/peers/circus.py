"""circus (PyPI `circus`): circusd over ZeroMQ, all endpoints as ipc:// unix sockets.

circus does not restart on SIGCHLD: it reaps and respawns when its periodic
check runs, every `check_delay` seconds (5 by default).  That period is its
restart delay, so we set it to 0.1 s, in every scenario (one config per
peer); it is also what circus pays at idle.  Lower would spin.
`python3 -m bench --circus-check-delay 5` measures circus as installed.
"""

import os

CHECK_DELAY = 0.1

from .base import Peer, have_module, python

WATCHER = """
[watcher:{name}]
cmd = {cmd}
args = {args}
numprocesses = 1
respawn = true
copy_env = true
graceful_timeout = 5
"""


class Circus(Peer):
    name = "circus"
    check_delay = CHECK_DELAY  # the harness may override it (--circus-check-delay)

    @classmethod
    def missing(cls):
        return have_module("circus") or have_module("zmq")

    @classmethod
    def version(cls):
        from importlib.metadata import version

        return version("circus")

    def start(self, services):
        conf = os.path.join(self.workdir, "circus.ini")
        with open(conf, "w") as f:
            f.write(self.config(services))
        self.launch([python(), "-m", "circus.circusd", conf], "circusd.out")

    def config(self, services):
        w = self.workdir
        # multicast_endpoint empty: otherwise circusd joins a UDP multicast group
        # to be discovered on the network; no stats_endpoint: defining one turns
        # circusd-stats on; statsd/httpd off, no TCP anywhere.
        head = f"""
[circus]
check_delay = {self.check_delay}
endpoint = ipc://{w}/ctl.sock
pubsub_endpoint = ipc://{w}/pub.sock
multicast_endpoint =
statsd = false
httpd = false
loglevel = WARNING
logoutput = {w}/circusd.log
"""
        body = "".join(
            WATCHER.format(name=s.name, cmd=s.argv[0], args=" ".join(s.argv[1:]))
            for s in services)
        return head + body
