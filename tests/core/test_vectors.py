"""Replays every case of ../shared/vectors/procd-behaviour.json in-process, with real children.

Deliberate deviations from procd get a patch here (what we show instead) and
a test of their own in test_deviations.py:
- invalid instances are listed (running false, `errors` says why);
- an unknown user is an error, the instance does not start;
- respawn given as JSON numbers is read as numbers.
"""

import signal

import pytest

from tests.conftest import load_vectors
from tests.core.harness import Supervisor
from tests.core.vector_replay import replay_case

CASES = {c["name"]: c for c in load_vectors("procd-behaviour")["cases"]}


def _add_instances(service, extra):
    def patch(reply):
        instances = reply[service].setdefault("instances", {})
        instances.update(extra)
        reply[service]["instances"] = dict(sorted(instances.items()))
        return reply
    return patch


def _invalid(command, errors):
    out = {"running": False}
    if command is not None:
        out["command"] = command
    out.update({"term_timeout": 5, "exit_code": 0, "errors": errors})
    return out


def _respawn_numbers(reply):
    reply["rnum"]["instances"]["i1"]["respawn"] = {"threshold": 3600, "timeout": 1, "retry": 5}
    return reply


PATCHES = {
    "invalid_nice": {2: _add_instances("nic", {
        "i1": _invalid(["/bin/sleep", "1000"], ["invalid instance: nice 50 outside -20..20"])})},
    "empty_and_missing_command": {2: _add_instances("cmd", {
        "empty": _invalid([], ["invalid instance: 'command' is empty"]),
        "numbers": _invalid([1, 2], ["invalid instance: 'command' must contain only strings"]),
    })},
    "respawn_values_as_numbers": {2: _respawn_numbers},
}
# Cases whose recorded behaviour pyprocd refuses on purpose (see test_deviations.py).
SKIPPED = {"unknown_user": "procd runs an unknown user's service as root; pyprocd refuses"}
# procd log lines we do not print the same way because the behaviour differs.
LOG_EXEMPT = {"empty_and_missing_command"}


@pytest.fixture
def supervisor(tmp_path):
    # procd was recorded as a nohup background job: SIGHUP ignored, inherited
    # by instances. Launch "our procd" the same way for the replay.
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sup = Supervisor(tmp_path)
    try:
        yield sup
    finally:
        sup.close()
        signal.signal(signal.SIGHUP, old)


@pytest.mark.parametrize("name", sorted(CASES))
def test_replay(name, supervisor, tmp_path):
    if name in SKIPPED:
        pytest.skip(SKIPPED[name])
    case = CASES[name]
    (tmp_path / "watched.conf").write_text("x\n")
    replay_case(case, supervisor.call, supervisor.pump, str(tmp_path),
                supervisor.spawner.base_env, PATCHES.get(name))
    # Each case ends with every service deleted, as recorded.
    for svc in list(supervisor.mgr.services):
        supervisor.call("delete", {"name": svc})
    assert supervisor.wait(lambda: not supervisor.mgr.services and not supervisor.mgr.running_pids())
    if name not in LOG_EXEMPT:
        for line in case["procd_log"]:
            assert line.removeprefix("procd: ") in supervisor.log.lines
