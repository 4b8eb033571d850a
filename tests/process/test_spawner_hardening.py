"""Hardening keys end to end: `service set` -> ServiceManager -> Spawner -> child."""

import json
import signal

import pytest

from tests.conftest import needs_root
from tests.core.harness import Supervisor

SLEEPER = ["/bin/sleep", "600"]   # comm becomes "sleep" once the exec happened


def execed(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "sleep"
    except OSError:
        return False


@pytest.fixture
def sup(tmp_path):
    supervisor = Supervisor(tmp_path)
    yield supervisor
    supervisor.close()


def write_json(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def listed(sup, service):
    status, reply = sup.call("list", {"name": service})
    assert status == 0
    return reply[service]["instances"]["i1"]


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)


def test_seccomp_and_no_new_privs_apply_to_an_unjailed_instance(sup, tmp_path):
    policy = write_json(tmp_path, "p.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"}]})
    status, _ = sup.call("set", {"name": "hard", "instances": {"i1": {
        "command": SLEEPER, "seccomp": policy, "no_new_privs": True}}})
    assert status == 0
    assert sup.wait(lambda: sup.inst("hard", "i1").running, 30)
    pid = sup.inst("hard", "i1").pid
    assert sup.wait(lambda: execed(pid), 30)
    fields = proc_status(pid)
    assert fields["Seccomp"].strip() == "2"
    assert fields["NoNewPrivs"].strip() == "1"
    assert listed(sup, "hard")["running"] is True


def test_unknown_syscall_name_is_an_instance_error_not_a_start(sup, tmp_path):
    policy = write_json(tmp_path, "p.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chdir", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"}]})
    status, _ = sup.call("set", {"name": "bad", "instances": {"i1": {
        "command": SLEEPER, "seccomp": policy}}})
    assert status == 0
    inst = sup.inst("bad", "i1")
    assert not inst.running and inst.pid == 0
    entry = listed(sup, "bad")
    assert entry["running"] is False
    assert any("no_such_syscall" in e for e in entry["errors"]), entry


def test_unknown_capability_is_an_instance_error(sup, tmp_path):
    caps = write_json(tmp_path, "c.json", {"bounding": ["CAP_TIME_TRAVEL"]})
    sup.call("set", {"name": "capbad", "instances": {"i1": {
        "command": SLEEPER, "capabilities": caps}}})
    entry = listed(sup, "capbad")
    assert entry["running"] is False
    assert any("CAP_TIME_TRAVEL" in e for e in entry["errors"]), entry


@needs_root
def test_capabilities_apply_to_an_unjailed_instance_with_a_user(sup, tmp_path):
    only = ["CAP_NET_BIND_SERVICE"]
    caps = write_json(tmp_path, "c.json", {"bounding": only, "effective": only,
                                           "permitted": only, "inheritable": only,
                                           "ambient": only})
    sup.call("set", {"name": "capok", "instances": {"i1": {
        "command": ["/bin/sleep", "600"], "capabilities": caps, "user": "nobody"}}})
    assert sup.wait(lambda: sup.inst("capok", "i1").running, 30)
    pid = sup.inst("capok", "i1").pid
    assert sup.wait(lambda: execed(pid), 30)
    fields = proc_status(pid)
    bit = 1 << 10
    for key in ("CapBnd", "CapEff", "CapPrm", "CapAmb"):
        assert int(fields[key], 16) == bit, key
    assert fields["Uid"].split()[0] != "0"


def test_a_policy_that_kills_at_exec_is_reported(sup, tmp_path):
    """The kernel enforces the policy from the exec on: a service that needs a denied
    call dies with SIGSYS and the exit is recorded, never a silent unfiltered run."""
    policy = write_json(tmp_path, "p.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["nanosleep", "clock_nanosleep"], "action": "SCMP_ACT_KILL_PROCESS"}]})
    sup.call("set", {"name": "dies", "instances": {"i1": {
        "command": ["/bin/sleep", "600"], "seccomp": policy}}})
    inst = sup.inst("dies", "i1")
    assert sup.wait(lambda: inst.exits, 30)
    assert inst.exits[-1].signal == signal.SIGSYS  # 31 on x86/arm, 12 on MIPS
