"""A recorded policy, and an OpenWrt package's policy, enforced with the `seccomp` key."""

import json
import signal
import sys

import pytest

from tests.core.harness import Supervisor
from tests.trace import program
from tests.trace.conftest import HERE, PROGRAM, compile_c, recorded_names

SIGSYS_EXIT = 128 + signal.SIGSYS   # what KILL_PROCESS looks like in `list`


@pytest.fixture
def sup(tmp_path):
    supervisor = Supervisor(tmp_path)
    yield supervisor
    supervisor.close()


def run_instance(sup, name, command, policy_path):
    """Start one instance under `policy_path`, wait for its exit; its exit_code."""
    status, _ = sup.call("set", {"name": name, "instances": {"i1": {
        "command": command, "seccomp": str(policy_path)}}})
    assert status == 0
    inst = sup.inst(name, "i1")
    assert inst.spawn_error is None and not inst.spec.problems, inst.spec.problems
    assert sup.wait(lambda: inst.exits, 60), "the instance never exited"
    return inst.exit_code


def write_policy(path, names):
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
        {"names": names, "action": "SCMP_ACT_ALLOW"}]}))
    return path


@pytest.mark.usefixtures("tracing")
def test_recorded_policy_runs_the_program_and_without_the_rare_call_kills_it_there(sup, tmp_path):
    names = recorded_names(tmp_path, [sys.executable, PROGRAM, str(tmp_path / "m0"), "parent"])
    assert program.MAIN_CALL in names

    marks = tmp_path / "m1"
    command = [sys.executable, PROGRAM, str(marks), "parent"]
    assert run_instance(sup, "whole", command, tmp_path / "recorded.json") == 0
    assert marks.read_text().splitlines()[-2:] == ["child ran", "child status 0"]

    cut = write_policy(tmp_path / "cut.json", [n for n in names if n != program.MAIN_CALL])
    marks = tmp_path / "m2"
    command = [sys.executable, PROGRAM, str(marks), "parent"]
    assert run_instance(sup, "cut", command, cut) == SIGSYS_EXIT
    assert marks.read_text().splitlines()[-1] == "before uname"   # met the policy at uname


@pytest.mark.parametrize("compiler", ["cc", "musl-gcc"])
def test_umdns_policy_lets_a_program_making_umdns_calls_run(sup, tmp_path, compiler):
    binary = compile_c(str(tmp_path), "umdns_like.c", "umdns_like", compiler)
    assert run_instance(sup, "umdns", [binary], HERE / "umdns.json") == 42
    # the filter is real: one call outside the policy and the program is killed
    assert run_instance(sup, "umdns2", [binary, "outside"], HERE / "umdns.json") == SIGSYS_EXIT
