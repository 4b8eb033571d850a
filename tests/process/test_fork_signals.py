"""Signals and the fork/exec window: a child is never mistaken for the daemon.

Between fork and exec the child still runs the daemon's Python: without care, a signal
sent to it (by a watchdog, a `signal` call, a stop) lands in the daemon's handlers and
wakeup pipe, and the daemon acts on it as if it were its own (shutdown, re-exec, dump).
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.core.harness import Supervisor
from tests.e2e.stack import Stack, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
DEADLINE = 120


def run_scenario(signum):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, os.path.join(HERE, "scenario_fork_signal.py"),
                           str(int(signum))], capture_output=True, text=True,
                          timeout=DEADLINE, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


# the daemon's shutdown, state dump, HUP and re-exec signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP,
                                    signal.SIGRTMIN + 1])
def test_signal_before_exec_acts_on_the_child_not_the_daemon(signum):
    report = run_scenario(signum)
    assert report["parent_saw"] == []
    # the default action applies to the child, as it would after exec
    assert report["child_signal"] == signum


def test_daemon_survives_a_watchdog_restart_loop(tmp_path):
    """A zero watchdog timeout SIGTERMs each new child at once, mostly before its exec."""
    stack = Stack(tmp_path).start()
    try:
        assert stack.call("set", {"name": "other", "instances": {"i": {
            "command": ["/bin/sleep", "1000"]}}})[0] == 0
        assert stack.call("set", {"name": "x", "instances": {"i": {
            "command": ["/bin/sleep", "1000"], "respawn": ["1", "0", "0"]}}})[0] == 0
        assert stack.call("watchdog", {"name": "x", "instance": "i", "mode": 1,
                                       "timeout": 0})[0] == 0

        def cycles():
            return stack.daemon_stderr().count("x::i pid") // 2

        assert wait_for(lambda: cycles() >= 300 or stack.daemon.poll() is not None, DEADLINE)
        assert stack.daemon.poll() is None, stack.daemon_stderr()[-2000:]
        assert stack.call("watchdog", {"name": "x", "instance": "i", "mode": 0})[0] == 0
        status, listed = stack.call("list", {"name": "other"})
        assert status == 0 and listed["other"]["instances"]["i"]["running"] is True
    finally:
        stack.close()


def test_daemon_survives_a_client_looping_set_and_delete(tmp_path):
    """Each delete SIGTERMs a child that may not have exec'd yet."""
    stack = Stack(tmp_path).start()
    try:
        service = {"name": "loop", "instances": {"i": {"command": ["/bin/sleep", "1000"]}}}
        for cycle in range(300):
            assert stack.call("set", service)[0] == 0, (cycle, stack.daemon_stderr()[-2000:])
            assert stack.call("delete", {"name": "loop"})[0] == 0, (cycle, stack.daemon_stderr()[-2000:])
        assert stack.daemon.poll() is None, stack.daemon_stderr()[-2000:]
        assert "stopping all instances" not in stack.daemon_stderr()
    finally:
        stack.close()


def ignored_signals(path):
    """SigIgn of the process whose /proc/<pid>/status was copied to path."""
    for line in path.read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask >> (n - 1) & 1}
    raise AssertionError(f"no SigIgn in {path}")


def status_copier(tmp_path, name):
    out = tmp_path / f"{name}.status"
    script = tmp_path / f"{name}.sh"
    script.write_text(f'#!/bin/sh\ncat /proc/$$/status > "{out}.tmp" && mv "{out}.tmp" "{out}"\n')
    script.chmod(0o755)
    return script, out


def test_trigger_scripts_start_with_default_sigpipe_and_sigxfsz(tmp_path):
    stack = Stack(tmp_path).start()
    try:
        script, out = status_copier(tmp_path, "trigger")
        assert stack.call("set", {"name": "t", "triggers": [
            ["go", ["run_script", str(script)]]]})[0] == 0
        assert stack.call("event", {"type": "go", "data": {}})[0] == 0
        assert wait_for(out.exists, DEADLINE), stack.daemon_stderr()[-2000:]
        ignored = ignored_signals(out)
        assert signal.SIGPIPE not in ignored and signal.SIGXFSZ not in ignored
        # inherited ignores are kept, as procd's children keep them (the stack is a nohup job)
        assert signal.SIGHUP in ignored
    finally:
        stack.close()


def test_helper_scripts_start_with_default_sigpipe_and_sigxfsz(tmp_path):
    sup = Supervisor(tmp_path)
    try:
        script, out = status_copier(tmp_path, "running")
        done = []
        sup.spawner.run_script([str(script), "running"], done.append)
        assert sup.wait(lambda: done, DEADLINE)
        assert os.waitstatus_to_exitcode(done[0]) == 0
        ignored = ignored_signals(out)
        assert signal.SIGPIPE not in ignored and signal.SIGXFSZ not in ignored
    finally:
        sup.close()
