"""`make run`: a host bus, the supervisor and three demo services, in the foreground.

Starts `pyprocd bus` and `pyprocd` as child processes on a socket in a fresh
temp dir, submits a small demo over ubus (a service that crashes and is
respawned, one with limits and nice running as `nobody` when we are root,
one whose stdout is logged), prints how to talk to it, and waits. Ctrl-C or
SIGTERM stops the daemon (which stops every instance), then the bus, and
removes the temp dir: no process is left behind.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pyprocd

START_TIMEOUT = 30.0

CRASHER = "echo 'crasher: up, crashing in 2 s'; sleep 2; echo 'crasher: exit 3' >&2; exit 3"
# The banner's `signal` example sends SIGUSR1 (10): the talker answers it instead of dying.
TALKER = ("trap 'echo \"talker: got SIGUSR1\"' USR1; "
          "i=0; while :; do i=$((i+1)); echo \"talker: tick $i\"; sleep 5; done")
STOP_TIMEOUT = 30.0  # the daemon stops every instance (term_timeout 2 s) before it exits


def say(text):
    """Print for the person watching; a closed stdout (`make run | head`) is no error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Nobody reads any more: later prints and the exit-time flush go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def demo_services(as_root):
    limited = {"command": ["/bin/sleep", "86400"], "nice": 5,
               "limits": {"nofile": "256 512", "core": "0"}, "term_timeout": 2}
    if as_root:
        limited["user"] = "nobody"
    return [
        {"name": "crasher", "instances": {"main": {
            "command": ["/bin/sh", "-c", CRASHER], "respawn": ["3600", "1", "0"],
            "stdout": True, "stderr": True}}},
        {"name": "limited", "instances": {"main": limited}},
        {"name": "talker", "instances": {"main": {
            "command": ["/bin/sh", "-c", TALKER], "stdout": True, "term_timeout": 2}}},
    ]


class Demo:
    def __init__(self):
        from pyprocd.loop import Loop

        self.loop = Loop()
        self.dir = tempfile.mkdtemp(prefix="pyprocd-demo-")
        self.socket = os.path.join(self.dir, "ubus.sock")
        self.children = {}  # pid -> name
        self.stopping = False
        self.exit_code = 0

    def spawn(self, name, argv):
        # Own session: a terminal's Ctrl-C reaches only us, and we stop them in order.
        # If we die without stopping them (SIGKILL), they get SIGTERM from the kernel.
        proc = subprocess.Popen([sys.executable, "-m", "pyprocd", *argv], start_new_session=True,
                                preexec_fn=_terminate_with_parent(os.getpid()))  # noqa: PLW1509
        self.children[proc.pid] = name
        self.loop.watch_child(proc.pid, self._child_exited)
        return proc.pid

    def _child_exited(self, pid, status):
        name = self.children.pop(pid, "?")
        if not self.stopping:
            say(f"demo: {name} exited unexpectedly (status {status}); stopping")
            self.exit_code = 1
            self.stop()
        elif not self.children:
            self.loop.stop()
        elif name == "daemon":
            self._signal("bus", signal.SIGTERM)  # instances are gone: now the bus

    def _signal(self, name, signum):
        for pid, child in self.children.items():
            if child == name:
                os.kill(pid, signum)

    def stop(self, _signum=None):
        if self.stopping:
            return
        self.stopping = True
        say("\ndemo: stopping (the daemon stops every instance first)")
        if "daemon" in self.children.values():
            self._signal("daemon", signal.SIGTERM)
        else:
            self._signal("bus", signal.SIGTERM)
        if not self.children:
            self.loop.stop()

    def wait_until(self, condition):
        return self.loop.run_until(condition, START_TIMEOUT) and not self.stopping

    def submit(self):
        from pyprocd.bus.client import BlockingUbus

        with BlockingUbus(self.socket, timeout=10) as bus:
            for service in demo_services(os.geteuid() == 0):
                status, _ = bus.call("service", "set", service)
                say(f"demo: service set {service['name']}: status {status}")
        return True

    def service_listed(self):
        from pyprocd.bus.client import BlockingUbus

        try:
            with BlockingUbus(self.socket, timeout=5) as bus:
                status, objects = bus.lookup("service")
                return status == 0 and bool(objects)
        except OSError:
            return False

    def banner(self):
        src = os.path.dirname(os.path.dirname(os.path.abspath(pyprocd.__file__)))
        ubus = f"python3 -m pyprocd ubus -s {self.socket}"
        say(f"""
pyprocd demo running (bus pid {self._pid_of('bus')}, daemon pid {self._pid_of('daemon')}).
Talk to it from another shell{'' if _installed() else f' (first: export PYTHONPATH={src})'}:

  {ubus} call service list
  {ubus} -v list service
  {ubus} subscribe service
  {ubus} call service signal '{{"name":"talker","signal":10}}'

Instance output (crasher, talker) appears below. Ctrl-C stops everything.
""")

    def _pid_of(self, name):
        return next((pid for pid, child in self.children.items() if child == name), None)

    def run(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(signum, self.stop)
        try:
            self.spawn("bus", ["bus", "-s", self.socket])
            if self.wait_until(lambda: os.path.exists(self.socket)):
                syslog = os.path.join(self.dir, "log.sock")  # nobody listens: output to stderr
                config = os.path.join(self.dir, "config")  # no UCI settings: a clean demo
                os.mkdir(config)
                self.spawn("daemon", ["-s", self.socket, "--syslog", syslog, "--confdir", config,
                                      "--state-file", os.path.join(self.dir, "state.json"),
                                      "--initd-dir", config])
            if self.wait_until(self.service_listed) and self.submit():
                self.banner()
            if self.children:
                self.loop.run()
        finally:
            self.cleanup()
        return self.exit_code

    def cleanup(self):
        """Whatever ended the run (an exception included), stop in order: the daemon
        first, so that it stops its instances; a SIGKILL would leave them running."""
        if self.children:
            self.stop()
            self.loop.run_until(lambda: not self.children, STOP_TIMEOUT)
        for pid in list(self.children):  # only if the orderly stop did not finish
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.loop.run_until(lambda: not self.children, 10)
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _terminate_with_parent(parent):
    """preexec_fn for the demo's children: PR_SET_PDEATHSIG=SIGTERM (the demo has no threads)."""
    def child_setup():
        try:
            from pyprocd.process import shim

            shim.set_pdeathsig(signal.SIGTERM)
        except Exception:  # noqa: BLE001 - without cffi: a leftover is possible, no failure
            return
        if os.getppid() != parent:  # the demo died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return child_setup


def _installed():
    """True when `python3 -m pyprocd` works without PYTHONPATH (package installed)."""
    return not any(os.path.abspath(p) == os.path.dirname(os.path.dirname(
        os.path.abspath(pyprocd.__file__))) for p in os.environ.get("PYTHONPATH", "").split(":")
        if p)


def main():
    return Demo().run()


if __name__ == "__main__":
    sys.exit(main())
