"""`/etc/init.d/x start` through the init-script kit on the host, and what it costs.

A procd-style script (one instance from UCI, a reload trigger) is started
through the kit's rc.common under busybox ash (else /bin/sh) against a real
bus and daemon. Reported, each the median of several runs in the same
process tree:

* start_seconds: the script's `start` alone (the kit laid out once);
* initd_start_seconds: `pyprocd initd SCRIPT start`, which also lays the kit
  out and starts its own interpreter;
* python_processes: how many Python processes one start spawns, per command
  (jshn, ubus, uci, ...), and the median wall time of each kind: a start is
  dominated by these interpreter start-ups.
"""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from pyprocd.initd.install import COMMANDS, install_for_host

SCRIPT = """#!/bin/sh /etc/rc.common
START=50
USE_PROCD=1
start_service() {
	local secs
	config_load benchsvc
	config_get secs main secs 60
	procd_open_instance
	procd_set_param command /bin/sleep "$secs"
	procd_set_param respawn
	procd_close_instance
}
service_triggers() { procd_add_reload_trigger benchsvc; }
"""

# wraps a kit command: one log line per run (name, start ns, end ns)
TIMING_WRAPPER = """#!/bin/sh
t0=$(date +%s%N)
"$0.real" "$@"
rc=$?
echo "{name} $t0 $(date +%s%N)" >> {log}
exit $rc
"""


def _wait(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


class Host:
    def __init__(self, tmp):
        self.tmp = tmp
        self.socket = os.path.join(tmp, "ubus.sock")
        self.config = os.path.join(tmp, "config")
        os.mkdir(self.config)
        with open(os.path.join(self.config, "benchsvc"), "w") as f:
            f.write("config benchsvc 'main'\n\toption secs '3600'\n")
        self.script = os.path.join(tmp, "benchsvc")
        with open(self.script, "w") as f:
            f.write(SCRIPT)
        os.chmod(self.script, 0o755)
        self.env = dict(os.environ, PYTHONPATH=SRC, TMPDIR=tmp,
                        PYPROCD_UCI_SAVEDIR=os.path.join(tmp, "uci-save"))
        self.procs = []

    def start(self):
        py = [sys.executable, "-m", "pyprocd"]
        self.procs.append(subprocess.Popen([*py, "bus", "-s", self.socket], env=self.env,
                                           stderr=subprocess.DEVNULL))
        _wait(lambda: os.path.exists(self.socket))
        self.procs.append(subprocess.Popen(
            [*py, "-s", self.socket, "--syslog", os.path.join(self.tmp, "log"),
             "--state-file", "none", "--confdir", self.config], env=self.env,
            stderr=subprocess.DEVNULL))
        # ready when the service object answers
        _wait(lambda: subprocess.run([*py, "ubus", "-s", self.socket, "call", "service", "list"],
                                     env=self.env, capture_output=True, check=False).returncode == 0)

    def stop(self):
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def kit(self, name, timing_log=None):
        root = os.path.join(self.tmp, name)
        install_for_host(root, socket=self.socket)
        os.makedirs(os.path.join(root, "var", "lock"))
        if timing_log:
            for rel in COMMANDS:
                path = os.path.join(root, rel)
                os.rename(path, path + ".real")
                with open(path, "w") as f:
                    f.write(TIMING_WRAPPER.format(name=os.path.basename(rel), log=timing_log))
                os.chmod(path, 0o755)
        return root

    def run_kit(self, root, action):
        shell = [shutil.which("busybox"), "ash"] if shutil.which("busybox") else ["/bin/sh"]
        env = dict(self.env, PYPROCD_KIT_ROOT=root, UCI_CONFIG_DIR=self.config,
                   PATH=os.pathsep.join([os.path.join(root, "usr/bin"),
                                         os.path.join(root, "sbin"), os.environ["PATH"]]))
        start = time.perf_counter()
        subprocess.run([*shell, os.path.join(root, "etc/rc.common"), self.script, action],
                       env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    def run_initd(self, action):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pyprocd", "initd", "-s", self.socket, "-c",
                        self.config, self.script, action], env=self.env, check=True,
                       capture_output=True)
        return time.perf_counter() - start


def _processes(log):
    per = {}
    with open(log) as f:
        for line in f:
            name, t0, t1 = line.split()
            per.setdefault(name, []).append((int(t1) - int(t0)) / 1e9)
    return per


def run(quick):
    reps = 3 if quick else 10
    tmp = tempfile.mkdtemp(prefix="bench-initd-")
    host = Host(tmp)
    try:
        host.start()
        plain = host.kit("kit")
        starts = [host.run_kit(plain, "start") for _ in range(reps)]
        initd = [host.run_initd("start") for _ in range(reps)]
        log = os.path.join(tmp, "timing.log")
        timed = host.kit("kit-timed", timing_log=log)
        for _ in range(reps):
            host.run_kit(timed, "start")
        per = _processes(log)
        host.run_kit(plain, "stop")
    finally:
        host.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "shell": "busybox ash" if shutil.which("busybox") else "/bin/sh",
        "start_seconds": round(statistics.median(starts), 3),
        "initd_start_seconds": round(statistics.median(initd), 3),
        "python_processes_per_start": sum(len(v) for v in per.values()) // reps,
        "python_processes": {name: {"count": len(v) // reps,
                                    "median_seconds": round(statistics.median(v), 3)}
                             for name, v in sorted(per.items())},
    }
