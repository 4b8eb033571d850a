"""Revive: instances that gave up show as failed; revive restarts them with a reset counter."""

import os
import signal

from tests.daemon.lifecycle_helpers import Mini, wait_for


def _flaky(tmp_path, name):
    """Exits 1 at once until the file `ok-<name>` exists, then runs."""
    ok = tmp_path / f"ok-{name}"
    script = f'test -e "{ok}" || exit 1; exec sleep 1000'
    return ok, {"command": ["/bin/sh", "-c", script], "respawn": ["3600", "0", "2"]}


def _gave_up(mini, service, name):
    inst = mini.instances(service, verbose=True).get(name, {})
    return inst.get("failed") is True and not inst["running"] and inst


def test_revive_by_method_resets_the_counter(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    mini.start()
    ok, spec = _flaky(tmp_path, "a")
    assert mini.call("set", {"name": "flaky", "instances": {"a": spec}})[0] == 0
    failed = wait_for(lambda: _gave_up(mini, "flaky", "a"), what="crash-loop give-up")
    assert failed["respawn_count"] == 3  # 1 start + 2 respawns, then the give-up
    assert "respawn" not in failed  # respawn turned off, as procd does
    plain = mini.instances("flaky")["a"]
    assert plain["running"] is False and plain["exit_code"] == 1

    assert mini.call("revive", {"name": "nope"})[0] == 4  # NOT_FOUND
    assert mini.call("revive", {"name": "flaky", "instance": "nope"})[0] == 4

    ok.write_text("")
    status, reply = mini.call("revive", {"name": "flaky", "instance": "a"})
    assert status == 0 and reply == {"revived": ["flaky::a"]}
    inst = wait_for(lambda: (i := mini.instances("flaky", verbose=True)["a"])["running"] and i,
                    what="revived instance running")
    assert "failed" not in inst
    assert "respawn_count" not in inst  # reset to 0
    assert inst["respawn"] == {"threshold": 3600, "timeout": 0, "retry": 2}  # back on
    assert os.waitstatus_to_exitcode(mini.stop()) == 0


def test_sigusr2_revives_all_and_sigusr1_dumps_state(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    daemon = mini.start()
    oks = []
    for service in ("s1", "s2"):
        ok, spec = _flaky(tmp_path, service)
        oks.append(ok)
        assert mini.call("set", {"name": service, "instances": {"x": spec}})[0] == 0
    for service in ("s1", "s2"):
        wait_for(lambda s=service: _gave_up(mini, s, "x"), what=f"{service} give-up")

    os.kill(daemon, signal.SIGUSR1)
    wait_for(lambda: any("s2::x failed" in line for line in mini.lines()), what="state dump")
    dump = [line for line in mini.lines() if "s1::x" in line]
    assert "respawn_count 3" in dump[-1] and "code 1" in dump[-1]

    for ok in oks:
        ok.write_text("")
    os.kill(daemon, signal.SIGUSR2)
    for service in ("s1", "s2"):
        wait_for(lambda s=service: mini.instances(s)["x"]["running"], what=f"{service} revived")
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
