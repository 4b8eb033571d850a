"""Crash survival: a SIGKILLed daemon started again takes its instances back."""

import json
import os
import signal

from pyprocd.core.manager import ServiceManager
from pyprocd.daemon import state as state_mod
from pyprocd.daemon.survival import Survival
from pyprocd.loop import Loop
from tests.daemon.lifecycle_helpers import Mini, alive, read_text, wait_for

COUNT = 50


def _service(count, respawn=("3600", "0", "5")):
    return {"name": "many", "instances": {
        f"i{n:02d}": {"command": ["sleep", "1000"], "respawn": list(respawn)}
        for n in range(count)}}


def _state_pids(path):
    text = read_text(path)
    if not text:
        return set()
    saved = json.loads(text)
    return {i["pid"] for s in saved["manager"]["services"] for i in s["instances"] if i["pid"]}


def test_sigkilled_daemon_takes_back_running_instances(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    mini.start()
    assert mini.call("set", _service(COUNT))[0] == 0
    before = wait_for(lambda: (p := mini.pids("many")) and all(p.values()) and len(p) == COUNT
                      and p, what="50 running instances")
    for pid in before.values():
        procs.track(pid)  # re-parented to us once the daemon dies: we reap them
    # The state file catches up (debounced) with every pid.
    wait_for(lambda: _state_pids(mini.state) == set(before.values()), what="state file")

    old_daemon = mini.pid
    os.kill(old_daemon, signal.SIGKILL)
    procs.reap(old_daemon)
    assert all(alive(pid) for pid in before.values())

    mini.start()  # by hand, same options: takes the stale pidfile over
    assert mini.pid != old_daemon
    after = mini.pids("many")
    assert after == before  # same pids, nothing started twice
    listing = mini.instances("many")
    assert all(i["running"] for i in listing.values())
    assert any("took back 50 running instances" in line for line in mini.lines())

    # Exits of adopted (not our child any more) instances are still noticed
    # and respawn still applies.
    victim = before["i07"]
    os.kill(victim, signal.SIGKILL)
    procs.reap(victim)
    new = wait_for(lambda: (p := mini.pids("many")["i07"]) and p != victim and p,
                   what="respawn of the killed adopted instance")
    assert alive(new)
    assert {n: p for n, p in mini.pids("many").items() if n != "i07"} == \
        {n: p for n, p in before.items() if n != "i07"}

    # Clean shutdown stops adopted instances too, and drops the state file.
    status = mini.stop()
    assert os.waitstatus_to_exitcode(status) == 0
    for pid in before.values():
        if pid != victim:
            procs.reap(pid)
    assert not mini.state.exists()


class _Life:
    handed_over = None

    class opts:
        state_file = None


class _Spawner:
    """Never asked to start anything in these tests unless respawn kicks in."""

    def __init__(self):
        self.spawned = []

    def spawn(self, spec, on_exit, on_forked=None, announce=None):
        from pyprocd.process.spawn import Running

        self.spawned.append(spec.name)
        return Running(10**9 + len(self.spawned), None)

    def kill(self, pid, sig, group=False):
        return 0


def _restore_from(tmp_path, saved):
    path = tmp_path / "state.json"
    state_mod.write_atomic(str(path), state_mod.encode(saved))
    loop = Loop()
    loop.strict = True
    spawner = _Spawner()
    state_file = state_mod.StateFile(loop, str(path))
    log = []
    mgr = ServiceManager(loop, spawner, recorder=state_file, log=lambda m, p=0: log.append(m))
    survival = Survival(loop, mgr, _Life(), sink=None, log=lambda m, p=0: log.append(m),
                        state_file=state_file)
    return loop, mgr, spawner, survival.restore(), log


def _entry(name, pid, start, respawn=True):
    return {"name": name, "raw": {"command": ["sleep", "1"], "respawn": ["3600", "7", "5"]},
            "data": None, "version": 1, "pid": pid, "exit_code": 0, "runtime": 1.0,
            "respawn": respawn, "respawn_count": 2, "halt": False, "restart": False,
            "failed": False, "spawn_error": None, "watchdog": [0, 30, False], "exits": [],
            "proc": {"start": start}}


def _saved(*entries):
    return {"format": state_mod.STATE_FORMAT, "daemon_pid": 1,
            "manager": {"format": state_mod.STATE_FORMAT, "services": [
                {"name": "svc", "autostart": True, "data": None, "triggers": None,
                 "validate": [], "version": 1, "deleted": False,
                 "instances": list(entries), "stopping": []}]}}


def test_recycled_pid_is_never_adopted(tmp_path):
    # Our own pid is alive, but with another start time it is "someone else":
    # the instance must be treated as dead (respawn timer armed), not adopted.
    me = os.getpid()
    real = state_mod.proc_start_time(me)
    loop, mgr, _spawner, counts, _log = _restore_from(
        tmp_path, _saved(_entry("recycled", me, real - 1), _entry("same", me, real)))
    assert counts == (1, 1)
    same = mgr.services["svc"].instances["same"]
    assert same.pid == me and same.respawn_count == 2  # adopted, counter kept
    recycled = mgr.services["svc"].instances["recycled"]
    loop.run_until(lambda: recycled.respawn_timer is not None, 10)
    assert recycled.pid == 0
    assert recycled.respawn_count == 3  # the lost run counts as a fast exit
    assert recycled.respawn_timer.remaining() > 5  # respawn timeout 7 s applies
    loop.unwatch_child(me)
    loop.close()


def test_unreadable_state_is_ignored(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    loop = Loop()
    state_file = state_mod.StateFile(loop, str(path))
    mgr = ServiceManager(loop, _Spawner(), recorder=state_file)
    log = []
    survival = Survival(loop, mgr, _Life(), sink=None, log=lambda m, p=0: log.append(m),
                        state_file=state_file)
    assert survival.restore() == (0, 0)
    assert not mgr.services and "ignoring" in log[0]
    loop.close()


def test_state_of_another_daemon_is_never_taken_over(procs, tmp_path):
    first = Mini(procs, tmp_path, "first")
    first.start()
    assert first.call("set", _service(2))[0] == 0
    pids = wait_for(lambda: (p := first.pids("many")) and all(p.values()) and p,
                    what="instances running")
    for pid in pids.values():
        procs.track(pid)
    # A second daemon on the same state file runs, but without crash survival.
    second = Mini(procs, tmp_path, "second", state=first.state)
    second.start("--identity=other")
    assert any("crash survival disabled" in line and f"pid {first.pid}" in line
               for line in second.lines())
    wait_for(lambda: _state_pids(first.state) == set(pids.values()), what="state file")
    os.kill(first.pid, signal.SIGKILL)
    procs.reap(first.pid)
    # Another identity (another bus/object) does not adopt what `first` ran.
    third = Mini(procs, tmp_path, "third", state=first.state)
    third.start("--identity=other")
    assert third.call("list", {})[1] == {}
    assert any("written by another daemon" in line for line in third.lines())
    for mini in (second, third):
        assert os.waitstatus_to_exitcode(mini.stop()) == 0
    for pid in pids.values():
        assert alive(pid)  # nobody touched them


def test_missing_fields_take_their_defaults(tmp_path):
    # A state written by another version: a field it lacks must not make the
    # whole state unreadable (every instance would run on unsupervised).
    me = os.getpid()
    good = _entry("good", me, state_mod.proc_start_time(me))
    sparse = dict(good, name="sparse")
    for key in ("watchdog", "exits", "respawn_count", "spawn_error", "halt", "version"):
        del sparse[key]
    loop, mgr, _spawner, counts, _log = _restore_from(tmp_path, _saved(good, sparse))
    assert counts == (2, 0)
    inst = mgr.services["svc"].instances["sparse"]
    assert inst.pid == me and inst.wd_mode == 0 and inst.respawn_count == 0
    loop.unwatch_child(me)
    loop.close()


def test_unreadable_entry_is_left_out_alone(tmp_path):
    me = os.getpid()
    good = _entry("good", me, state_mod.proc_start_time(me))
    bad = dict(good, name="bad", raw="not a table", pid=0)
    loop, mgr, _spawner, counts, log = _restore_from(tmp_path, _saved(good, bad))
    assert counts == (1, 0)
    assert sorted(mgr.services["svc"].instances) == ["good"]
    assert any("svc::bad left out" in line for line in log)
    loop.unwatch_child(me)
    loop.close()


def test_takeover_reattaches_output_pipes(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    mini.start()
    # Ignores SIGPIPE: its lines written while no daemon runs fail (EPIPE),
    # the ones after the takeover must be logged again.
    ticker = 'trap "" PIPE; n=0; while :; do echo "tick $n"; n=$((n+1)); sleep 0.02; done'
    assert mini.call("set", {"name": "talk", "instances": {
        "t": {"command": ["/bin/sh", "-c", ticker], "stdout": True}}})[0] == 0
    pid = wait_for(lambda: mini.pids("talk")["t"], what="ticker running")
    procs.track(pid)

    def ticks():
        prefix = f"sh[{pid}]: tick "
        return [int(line[len(prefix):]) for line in mini.lines() if line.startswith(prefix)]

    wait_for(lambda: len(ticks()) > 5, what="first ticks")
    wait_for(lambda: '"pipes":[{"child_fd":1' in (read_text(mini.state) or ""),
             what="pipe recorded in the state file")
    os.kill(mini.pid, signal.SIGKILL)
    procs.reap(mini.pid)
    before = max(ticks())
    mini.start()
    assert mini.pids("talk")["t"] == pid
    wait_for(lambda: max(ticks()) > before + 5, what="ticks after the takeover")
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
    procs.reap(pid)
