"""The `trace` instance key: the instance runs under `pyprocd trace` as procd runs it
under utrace (seccomp off for it), and its policy appears when the instance stops."""

import json
import os
import sys
import time

import pytest

from tests.core.harness import Supervisor
from tests.trace.conftest import PROGRAM, policy_names

pytestmark = pytest.mark.usefixtures("tracing")


@pytest.fixture
def sup(tmp_path):
    supervisor = Supervisor(tmp_path)
    yield supervisor
    supervisor.close()


def program_pid(marks, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if marks.exists():
            for line in marks.read_text().splitlines():
                if line.startswith("pid "):
                    return int(line.split()[1])
        time.sleep(0.02)
    raise AssertionError("the traced program never started")


def status_field(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return None


def test_traced_instance_runs_under_the_tracer_and_leaves_its_policy(sup, tmp_path):
    marks, output = tmp_path / "marks", tmp_path / "policy.json"
    # a policy that would kill the program at once: `trace` turns seccomp off (procd)
    deny = tmp_path / "deny.json"
    deny.write_text(json.dumps({"defaultAction": "SCMP_ACT_KILL_PROCESS",
                                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}))
    instance = {"command": [sys.executable, PROGRAM, str(marks), "sleep"], "trace": True,
                "seccomp": str(deny), "env": {"SECCOMP_FILE": str(output)},
                "stderr": True}   # the tracer's messages to the test's log, not /dev/log
    status, _ = sup.call("set", {"name": "traced", "instances": {"i1": instance}})
    assert status == 0
    inst = sup.inst("traced", "i1")
    assert sup.wait(lambda: inst.running, 30)
    tracer = inst.pid
    program = program_pid(marks)
    assert status_field(program, "TracerPid") == str(tracer)
    # it runs (the deny policy would have killed the tracer's own start), and the one
    # filter on it is the tracer's trace-every-call filter
    assert status_field(program, "Seccomp_filters") in ("1", None)
    with open(f"/proc/{tracer}/cmdline", "rb") as f:
        assert b"pyprocd/trace/__main__.py\x00-t\x005\x00--\x00" in f.read()
    _, reply = sup.call("list", {"name": "traced"})
    assert reply["traced"]["instances"]["i1"]["trace"] is True

    # a plain start again (no `trace`) restarts it untraced; the traced run's policy is
    # written when that instance stops
    instance.pop("trace")
    instance["command"] = ["/bin/sleep", "600"]
    status, _ = sup.call("set", {"name": "traced", "instances": {"i1": instance}})
    assert status == 0
    assert sup.wait(lambda: output.exists() and inst.running and inst.pid != tracer, 60)
    names = policy_names(output)
    assert {"execve", "clock_nanosleep", "exit_group"} <= set(names)
    assert not os.path.exists(f"/proc/{program}")
    assert "trace" not in sup.call("list", {"name": "traced"})[1]["traced"]["instances"]["i1"]
    assert status_field(inst.pid, "TracerPid") == "0"


def test_a_stubborn_traced_instance_is_stopped_in_time_with_its_policy(sup, tmp_path):
    """The program ignores SIGTERM: the tracer kills it before the daemon's own SIGKILL
    (term_timeout), says so, and still writes the policy."""
    marks, output = tmp_path / "marks", tmp_path / "policy.json"
    instance = {"command": [sys.executable, PROGRAM, str(marks), "stubborn"], "trace": True,
                "term_timeout": 3, "stderr": True, "env": {"SECCOMP_FILE": str(output)}}
    assert sup.call("set", {"name": "stubborn", "instances": {"i1": instance}})[0] == 0
    inst = sup.inst("stubborn", "i1")
    assert sup.wait(lambda: inst.running, 30)
    program = program_pid(marks)
    assert sup.call("delete", {"name": "stubborn"})[0] == 0
    assert sup.wait(lambda: output.exists() and not inst.running, 60)
    assert "clock_nanosleep" in policy_names(output)
    assert not os.path.exists(f"/proc/{program}")
    assert inst.exits[-1].signal == 0      # the tracer exited by itself, not by SIGKILL
    assert sup.wait(lambda: any("did not exit within 2 s of the stop signal" in m
                                for m in sup.syslog.drain()), 30)
