"""A supervisor daemon for lifecycle tests: the real lifecycle, loop, spawner,
manager and survival code, with a JSON control socket instead of ubus (so the
tests do not depend on the bus layer) and instance output appended to a file
instead of syslog (so no datagram is ever dropped by a full socket).

    python3 mini_daemon.py [lifecycle options] --control=SOCK --output=FILE

Control protocol: connect, send one JSON line {"method": m, "msg": {...}},
read one JSON line {"status": s, "reply": r}. Extra method "_pid".
"""

import json
import os
import signal
import socket
import sys

from pyprocd.daemon import lifecycle


class FileSink:
    """Appends "<ident>: <line>" per log line; one write per line (O_APPEND)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def send(self, priority, ident, message):
        os.write(self.fd, f"{ident}: {message}\n".encode())


def main(argv):
    opts, rest = lifecycle.parse_args(argv)
    args = dict(a.lstrip("-").partition("=")[::2] for a in rest)
    life = lifecycle.Lifecycle(opts)
    life.start()

    from pyprocd.api.service import Method, call_service, method_table
    from pyprocd.core.manager import ServiceManager
    from pyprocd.daemon.state import StateFile
    from pyprocd.daemon.survival import Survival
    from pyprocd.loop import Loop
    from pyprocd.process.host import Host
    from pyprocd.process.logsink import DaemonLog

    loop = Loop()
    sink = FileSink(args["output"])
    log = DaemonLog(sink=sink)  # daemon messages go to the same file, "pyprocd: ..."
    spawner = Host(loop, sink, base_env=life.instance_environment(), log=log)
    state_file = None
    if opts.state_file:
        state_file = StateFile(loop, opts.state_file, log=log,
                               identity=args.get("identity", ""))
    mgr = ServiceManager(loop, spawner, log=log, recorder=state_file, facts=spawner)
    stopping = []
    control = []
    survival = Survival(loop, mgr, life, sink=sink, log=log, state_file=state_file,
                        is_stopping=lambda: bool(stopping),
                        before_exec=[lambda: control[0].close()])
    survival.restore()
    survival.install()

    methods = method_table([Method("reexec", {}, survival.reexec_method, changes_state=False,
                                   listed=False)])

    def dispatch(request):
        if request["method"] == "_pid":
            return 0, {"pid": os.getpid()}
        return call_service(mgr, request["method"], request.get("msg"), methods)

    control.append(_listen(args["control"], loop, dispatch))

    def shutdown(signum):
        stopping.append(signum)
        mgr.stop_all(loop.stop)

    loop.add_signal_handler(signal.SIGTERM, shutdown)
    life.notify_ready()
    loop.run()
    survival.finish()
    life.finish()
    return 0


def _listen(path, loop, dispatch):
    if os.path.exists(path):
        os.unlink(path)  # left by the previous image / a killed daemon
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)

    def accept():
        conn, _ = server.accept()
        with conn:
            conn.settimeout(30)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            status, reply = dispatch(json.loads(data))
            conn.sendall(json.dumps({"status": status, "reply": reply}).encode() + b"\n")

    loop.add_reader(server.fileno(), accept)
    return server


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
