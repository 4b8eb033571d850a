"""The instance state machine on a fake clock and a fake host: start, exit,
respawn timing, giving up, stop and its SIGKILL escalation, `running`."""

import pytest

from pyprocd.api.service import call_service
from pyprocd.core.manager import ServiceManager
from tests.core.fakes import SIGKILL, SIGTERM, FakeHost, FakeLoop, exited


@pytest.fixture
def world():
    loop, host = FakeLoop(), FakeHost()
    events = []
    mgr = ServiceManager(loop, host, facts=host, notify=lambda t, p: events.append(t))
    return loop, host, mgr, events


def _set(mgr, **instance):
    status, _ = call_service(mgr, "set", {"name": "s", "instances": {"i": {"command": ["prog"], **instance}}})
    assert status == 0
    return mgr.services["s"].instances["i"]


def test_start_and_clean_exit_without_respawn(world):
    loop, host, mgr, events = world
    inst = _set(mgr)
    assert inst.running and host.running() == [inst.pid]
    assert events[:2] == ["instance.start", "service.start"]
    host.end(inst.pid, exited(0))
    assert not inst.running and inst.exit_code == 0
    loop.advance(3600)
    assert host.running() == []  # no respawn without `respawn`


def test_respawn_waits_its_timeout_then_gives_up_after_retry_fast_crashes(world):
    loop, host, mgr, _events = world
    inst = _set(mgr, respawn=["3600", "5", "2"])  # threshold 3600 s, timeout 5 s, retry 2
    for crash in range(1, 3):
        pid = inst.pid
        host.end(pid, exited(1))
        assert not inst.running and inst.respawn_count == crash
        loop.advance(4.9)
        assert not inst.running  # not before its timeout
        loop.advance(0.2)
        assert inst.running and inst.pid != pid
    host.end(inst.pid, exited(1))  # the third fast crash: over retry
    assert inst.failed and not inst.respawn
    loop.advance(3600)
    assert not inst.running and len(host.procs) == 3


def test_a_run_longer_than_the_threshold_resets_the_count(world):
    loop, host, mgr, _events = world
    inst = _set(mgr, respawn=["10", "0", "1"])
    host.end(inst.pid, exited(1))
    loop.advance(0)
    assert inst.running and inst.respawn_count == 1
    loop.advance(11)
    host.end(inst.pid, exited(1))
    assert inst.respawn_count == 0
    loop.advance(0)
    assert inst.running and not inst.failed


def test_delete_escalates_to_sigkill_after_term_timeout(world):
    loop, host, mgr, _events = world
    host.ignore_sigterm = True
    inst = _set(mgr, term_timeout=3)
    pid = inst.pid
    assert call_service(mgr, "delete", {"name": "s"})[0] == 0
    assert host.procs[pid].signals == [SIGTERM]
    loop.advance(2.9)
    assert host.procs[pid].alive
    loop.advance(0.2)
    assert host.procs[pid].signals == [SIGTERM, SIGKILL] and not host.procs[pid].alive
    assert "s" not in mgr.services


def test_state_spawn_false_never_escalates_to_sigkill(world):
    # procd's timeout handler kills only an instance that is being removed:
    # one that ignores SIGTERM keeps running and is listed running.
    loop, host, mgr, _events = world
    host.ignore_sigterm = True
    inst = _set(mgr, term_timeout=3)
    pid = inst.pid
    assert call_service(mgr, "state", {"name": "s", "spawn": False})[0] == 0
    loop.advance(60)
    assert host.procs[pid].signals == [SIGTERM]
    assert host.procs[pid].alive and inst.running
    assert call_service(mgr, "list", {"name": "s"})[1]["s"]["instances"]["i"]["running"] is True
    # Removing it afterwards does escalate.
    assert call_service(mgr, "delete", {"name": "s"})[0] == 0
    loop.advance(3.1)
    assert host.procs[pid].signals[-1] == SIGKILL and "s" not in mgr.services


def test_spawn_error_is_an_instance_error(world):
    _loop, host, mgr, _events = world
    host.fail_next_spawn = "hardening: bad policy"
    inst = _set(mgr)
    assert not inst.running and inst.failed
    listed = call_service(mgr, "list", {"name": "s"})[1]["s"]["instances"]["i"]
    assert "hardening: bad policy" in listed["errors"][-1]


def test_running_callback_after_a_set_with_instances(world):
    loop, host, _mgr, _events = world
    mgr_with_initd = ServiceManager(loop, host, facts=host, initd_dir="/etc/init.d")
    host.executable.add("/etc/init.d/s")
    assert call_service(mgr_with_initd, "set", {"name": "s", "instances": {"i": {"command": ["p"]}}})[0] == 0
    assert host.scripts == [["/etc/init.d/s", "running"]]
    assert call_service(mgr_with_initd, "set", {"name": "../x", "instances": {"i": {"command": ["p"]}}})[0] == 0
    assert host.scripts == [["/etc/init.d/s", "running"]]  # a name, never a path


def test_one_state_name_through_the_life_cycle(world):
    from pyprocd.daemon.survival import dump_lines

    loop, host, mgr, _events = world
    host.ignore_sigterm = True
    inst = _set(mgr, respawn=["3600", "5", "1"], term_timeout=2)
    assert inst.state == "running"
    host.end(inst.pid, exited(1))
    assert inst.state == "respawning"
    loop.advance(5)
    assert inst.state == "running"
    host.end(inst.pid, exited(1))  # second fast crash, retry 1: gives up
    assert inst.state == "failed"
    assert any("s::i failed" in line for line in dump_lines(mgr))
    exported = mgr.export_state()["services"][0]["instances"][0]
    assert exported["state"] == "failed"
    assert call_service(mgr, "revive", {"name": "s"})[1] == {"revived": ["s::i"]}
    assert inst.state == "running" and inst.respawn_count == 0
    assert call_service(mgr, "delete", {"name": "s", "instance": "i"})[0] == 0
    assert inst.state == "stopping"
    loop.advance(2)
    assert inst.state == "stopped" and not mgr.services["s"].instances


def test_watchdog_method_makes_the_settings_the_instances_own(world):
    loop, host, mgr, _events = world
    inst = _set(mgr, respawn=["3600", "0", "5"])
    status, reply = call_service(mgr, "watchdog", {"name": "s", "instance": "i",
                                                   "mode": 1, "timeout": 10})
    assert status == 0 and reply["mode"] == 1 and reply["timeout"] == 10
    pid = inst.pid
    loop.advance(9)
    assert inst.pid == pid
    loop.advance(1.5)  # not petted: a respawning instance is restarted
    assert host.procs[pid].signals == [SIGTERM] and inst.running and inst.pid != pid
    # A re-submitted config keeps the method's settings.
    _set(mgr, respawn=["3600", "0", "5"], watchdog=["0", "30"])
    assert (inst.wd_mode, inst.wd_timeout) == (1, 10)


@pytest.mark.parametrize("records", [False, True])
def test_our_pidfile_is_written_before_the_process_may_run(world, records):
    """A service that daemonises replaces the pidfile with its successor's pid as soon as
    it runs; a write of ours landing after that would name the exited process, and the
    successor would never be followed (it stays unsupervised, a second copy respawns)."""
    _loop, host, mgr, _events = world
    mgr.records_spawns = lambda: records
    successor = 4242
    host.on_run = lambda proc: host.write_pidfile("/run/d.pid", successor)
    inst = _set(mgr, pidfile="/run/d.pid")
    assert inst.running and inst.pid != successor
    assert host.pidfiles["/run/d.pid"] == successor
