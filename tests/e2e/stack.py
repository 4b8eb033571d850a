"""A real stack for end-to-end tests: `pyprocd bus` and the daemon as processes.

Everything goes over a unix socket in the test's temp dir; every process
started here is stopped by pid and waited for.
"""

import io
import json
import os
import signal
import subprocess
import sys
import time

from pyprocd.bus import ubuscli
from pyprocd.bus.client import BlockingUbus

START_DEADLINE = 60.0


def wait_for(condition, timeout=START_DEADLINE, step=0.02):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def object_listed(socket_path, name):
    try:
        with BlockingUbus(socket_path, timeout=5) as bus:
            status, objects = bus.lookup(name)
            return status == 0 and bool(objects)
    except OSError:
        return False


class Stack:
    def __init__(self, tmp_path, object_name="service", ignore_hup=True):
        self.dir = tmp_path
        self.socket = str(tmp_path / "ubus.sock")
        self.syslog = str(tmp_path / "log.sock")
        self.object = object_name
        self.env = dict(os.environ)
        self.python = [sys.executable]  # the daemon's interpreter and its flags
        self.program = ["-m", "pyprocd"]  # or the package's script, as a router starts it
        self.ignore_hup = ignore_hup
        self.bus = None
        self.daemon = None
        self.stderr_path = tmp_path / "daemon.stderr"

    def start_bus(self):
        with open(self.dir / "bus.stderr", "ab") as stderr:
            self.bus = subprocess.Popen([sys.executable, "-m", "pyprocd", "bus", "-s", self.socket],
                                        env=self.env, stderr=stderr)
        assert wait_for(lambda: os.path.exists(self.socket)), "bus did not start"

    def start_daemon(self, *extra):
        argv = [*self.python, *self.program, "-s", self.socket, "--syslog", self.syslog,
                "--object", self.object, *self.isolation(), *extra]
        # procd was recorded as a nohup job: instances inherit SIGHUP ignored.
        old = signal.signal(signal.SIGHUP, signal.SIG_IGN if self.ignore_hup else signal.SIG_DFL)
        try:
            with open(self.stderr_path, "ab") as stderr:
                self.daemon = subprocess.Popen(argv, env=self.env, stderr=stderr)
        finally:
            signal.signal(signal.SIGHUP, old)
        assert wait_for(lambda: object_listed(self.socket, self.object)), "daemon not on the bus"

    def start(self):
        self.start_bus()
        self.start_daemon()
        return self

    def diagnose(self, what):
        """Why a call failed: the CLI's words plus the state of the bus and the daemon."""
        def tail(name):
            path = self.dir / name
            return path.read_text(errors="replace")[-3000:] if path.exists() else "(none)"

        return (f"{what!r}; bus exit {self.bus and self.bus.poll()}, daemon exit "
                f"{self.daemon and self.daemon.poll()}\n--- bus stderr:\n{tail('bus.stderr')}"
                f"\n--- daemon stderr:\n{tail('daemon.stderr')}")

    def isolation(self):
        """Options that keep this daemon off the host's shared files (state, UCI,
        and the init scripts whose `running` it calls after a `set`)."""
        config = self.dir / "config"
        config.mkdir(exist_ok=True)
        initd = self.dir / "init.d"
        initd.mkdir(exist_ok=True)
        return ["--state-file", str(self.dir / "state.json"), "--confdir", str(config),
                "--initd-dir", str(initd)]

    def daemon_stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def base_env(self):
        return {k.encode(): v.encode() for k, v in self.env.items()}

    def ubus(self, *argv, tty=False):
        """Run the ubus CLI in this process: (exit code, stdout, stderr).

        stderr counts as no terminal (scripts: the recorded regime) unless tty=True.
        """
        out, err = io.BytesIO(), io.BytesIO()
        saved = sys.stdout, sys.stderr
        sys.stdout = io.TextIOWrapper(out, write_through=True)
        sys.stderr = io.TextIOWrapper(err, write_through=True)
        wrappers = sys.stdout, sys.stderr
        real_isatty = os.isatty
        os.isatty = lambda fd: tty
        try:
            code = ubuscli.main(["-s", self.socket, *argv])
        finally:
            os.isatty = real_isatty
            sys.stdout, sys.stderr = saved
            for wrapper in wrappers:
                wrapper.detach()  # keep the BytesIO open
        return code, out.getvalue().decode(), err.getvalue().decode()

    def call(self, method, request):
        """(status, reply) of `ubus call <object> method [json]`, from its exit code and stdout."""
        args = ["call", self.object, method]
        if request is not None:
            args.append(json.dumps(request, separators=(",", ":")))
        code, stdout, stderr = self.ubus(*args)
        if code == 0:
            return 0, json.loads(stdout) if stdout.strip() else None
        assert stderr.startswith("Command failed: ubus call "), self.diagnose(stderr)
        return (256 - code) & 0xFF, None

    def stop_daemon(self, timeout=60):
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        code, self.daemon = self.daemon.returncode, None
        return code

    def stop_bus(self):
        if self.bus is not None:
            if self.bus.poll() is None:
                self.bus.send_signal(signal.SIGTERM)
                try:
                    self.bus.wait(30)
                except subprocess.TimeoutExpired:
                    self.bus.kill()
                    self.bus.wait()
            self.bus = None

    def close(self):
        self.stop_daemon()
        self.stop_bus()
