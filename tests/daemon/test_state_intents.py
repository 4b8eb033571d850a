"""Crash survival with posix_spawn: a process that runs before its spawn line.

With the state file on, a plain instance is started with posix_spawn, which
returns after the exec: the journal's "intent" line comes first. A daemon
killed between the intent and the spawn line leaves a process nothing
records; the next daemon must find it in /proc and take it back (or stop
it), and never touch a process that is not it.

The kills happen where they hurt, through the state file's test hook
(state.CRASH_ENV): the daemon SIGKILLs itself right there.
"""

import os
import signal
import subprocess
import time

from pyprocd.daemon import state as state_mod
from tests.daemon.lifecycle_helpers import Mini, alive, descendants, ppid_of, wait_for

# Ignores SIGPIPE: what it writes while no daemon reads fails, the rest must be logged.
TICKER = 'trap "" PIPE; n=0; while :; do echo "tick $n"; n=$((n+1)); sleep 0.02; done'
RESPAWNING = {"name": "r", "instances": {
    "i": {"command": ["/bin/sh", "-c", TICKER], "respawn": ["3600", "0", "5"], "stdout": True}}}


def _runs(pid, argv):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == b"\0".join(a.encode() for a in argv) + b"\0"
    except OSError:
        return False


def _orphans(argv):
    """Our children (we are the subreaper) running argv."""
    return {pid for pid in descendants(os.getpid()) if ppid_of_or_0(pid) == os.getpid()
            and _runs(pid, argv)}


def ppid_of_or_0(pid):
    try:
        return ppid_of(pid)
    except OSError:
        return 0


def _crash_env(point):
    return dict(os.environ, **{state_mod.CRASH_ENV: point})


def _running_then_killed(procs, mini):
    """The instance runs and is on file; then it is killed, so the daemon
    respawns it (its second spawn) at once."""
    assert mini.call("set", RESPAWNING)[0] == 0
    first = wait_for(lambda: mini.pids("r")["i"], what="instance running")
    procs.track(first)
    wait_for(lambda: f'"pid":{first},' in (mini.state.read_text() or ""), what="state file")
    os.kill(first, signal.SIGKILL)
    return first


def test_crash_between_posix_spawn_and_its_record_takes_the_process_back(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    daemon = mini.start(env=_crash_env("spawn:2"))
    argv = RESPAWNING["instances"]["i"]["command"]
    first = _running_then_killed(procs, mini)
    procs.reap(daemon)  # killed itself between posix_spawn and the spawn line
    journal = (tmp_path / "state.json.journal").read_text()
    assert '["intent","r","i",' in journal and f'"spawn","r","i",{first},' not in journal
    # (the killed process's last fork shows its command line until it execs sleep)
    second = wait_for(lambda: len(o := _orphans(argv)) == 1 and o,
                      what="the respawned process, orphaned").pop()
    procs.track(second)
    assert second != first

    mini.start()
    listing = mini.instances("r")["i"]
    assert listing["running"] and listing["pid"] == second  # taken back
    assert not any(_runs(pid, argv) for pid in descendants(mini.pid)
                   if ppid_of_or_0(pid) == mini.pid)  # not started twice
    assert any("took back 1 running instances" in line for line in mini.lines())
    # Its log pipe is read again, and it is supervised as any other instance.
    wait_for(lambda: any(line.startswith(f"sh[{second}]: tick") for line in mini.lines()),
             what="its output logged after the takeover")
    os.kill(second, signal.SIGKILL)
    procs.reap(second)
    third = wait_for(lambda: (p := mini.pids("r")["i"]) and p != second and p,
                     what="respawn of the taken-back process")
    assert alive(third)
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
    wait_for(lambda: not alive(third), what="instance stopped")


def test_crash_right_after_the_intent_starts_it_once(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    daemon = mini.start(env=_crash_env("intent:2"))
    argv = RESPAWNING["instances"]["i"]["command"]
    first = _running_then_killed(procs, mini)
    procs.reap(daemon)  # killed itself after the intent line, before posix_spawn
    # Anything it started exists already; only the killed process's last fork
    # (its command line until it execs sleep) may linger a moment.
    wait_for(lambda: _orphans(argv) == set(), what="nothing started")

    mini.start()
    new = wait_for(lambda: (p := mini.pids("r")["i"]) and p != first and p,
                   what="the instance started by the new daemon")
    # (the ticker's own forks show its command line until they exec sleep: children only)
    assert alive(new) and [pid for pid in descendants(mini.pid)
                           if ppid_of_or_0(pid) == mini.pid and _runs(pid, argv)] == [new]
    assert _orphans(argv) == set()
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
    wait_for(lambda: not alive(new), what="instance stopped")


def test_crash_in_a_set_the_state_never_got_stops_the_unrecorded_process(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    daemon = mini.start(env=_crash_env("spawn:3"))
    names = [f"i{n}" for n in range(5)]
    service = {"name": "cut", "instances": {
        n: {"command": ["sleep", f"20{n[1:]}"]} for n in names}}
    from tests.daemon.test_state_keeping import _send_without_reply

    sock = _send_without_reply(mini, "set", service)
    procs.reap(daemon)
    sock.close()
    orphans = set().union(*(_orphans(spec["command"]) for spec in service["instances"].values()))
    for pid in orphans:
        procs.track(pid)
    assert len(orphans) == 3  # two on record, the third only announced

    mini.start()
    assert mini.call("list", {"name": "cut"}) == (0, {})  # the set never reached the state
    for pid in orphans:
        wait_for(lambda pid=pid: not alive(pid), what=f"pid {pid} stopped")
    assert any("stopping 3 processes the state does not describe" in line
               for line in mini.lines())
    assert os.waitstatus_to_exitcode(mini.stop()) == 0


# -- what an intent may match: find_intended() on real processes -------------------


def _spawn(argv, **kwargs):
    # Its own process group: a script's own children go with it in _finish.
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, process_group=0, **kwargs)


def _intent(argv, ticks, seq=1, path=None, pipes=()):
    return ["intent", "svc", "inst", ticks,
            {"argv": argv, "path": path or argv[0], "pipes": list(pipes), "log_as": argv[0]},
            seq]


def _finish(*children):
    for child in children:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_an_intent_matches_only_its_own_process():
    before = _spawn(["/bin/sleep", "3001"])  # same command, started before the intent
    time.sleep(0.05)
    ticks = state_mod.boot_ticks()
    other = _spawn(["/bin/sleep", "3002"])   # after it, another command line
    mine = _spawn(["/bin/sleep", "3001"])
    twin = _spawn(["/bin/sleep", "3001"])    # the same again, but already on record
    try:
        me = {os.getpid()}
        found = state_mod.find_intended([_intent(["/bin/sleep", "3001"], ticks)],
                                        {twin.pid}, me)
        assert found == {1: (mine.pid, state_mod.proc_start_time(mine.pid))}
        # Nothing at all when its parent is not one the dead daemon's orphans go to.
        assert state_mod.find_intended([_intent(["/bin/sleep", "3001"], ticks)],
                                       {twin.pid}, {1}) == {}
        # Two intents of one command line: two processes, never one twice.
        two = state_mod.find_intended([_intent(["/bin/sleep", "3001"], ticks, 1),
                                       _intent(["/bin/sleep", "3001"], ticks, 2)], set(), me)
        assert sorted(pid for pid, _start in two.values()) == sorted([mine.pid, twin.pid])
    finally:
        _finish(before, other, mine, twin)


def test_an_intent_finds_a_script_and_a_process_that_execd_on(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\nsleep 3003\n")
    script.chmod(0o755)
    ticks = state_mod.boot_ticks()
    # A `#!` file shows as its interpreter, the script's path, the arguments.
    as_script = _spawn([str(script), "x"])
    # A wrapper that exec'd another program is found by its log pipe.
    r, w = os.pipe()
    wrapper = _spawn(["/bin/sh", "-c", "exec sleep 3004"], stdout=w)
    os.close(w)
    try:
        wait_for(lambda: _runs(wrapper.pid, ["sleep", "3004"]), what="the wrapper's exec")
        me = {os.getpid()}
        found = state_mod.find_intended(
            [_intent([str(script), "x"], ticks, 1),
             _intent(["/bin/sh", "-c", "exec sleep 3004"], ticks, 2, path="/bin/sh",
                     pipes=[{"child_fd": 1, "ino": os.fstat(r).st_ino, "priority": 30}])],
            set(), me)
        assert {seq: pid for seq, (pid, _s) in found.items()} == {1: as_script.pid,
                                                                 2: wrapper.pid}
    finally:
        os.close(r)
        _finish(as_script, wrapper)


def test_a_process_with_the_command_line_but_another_pipe_is_not_the_intents():
    ticks = state_mod.boot_ticks()
    ours_r, ours_w = os.pipe()
    other_r, other_w = os.pipe()
    # A fork of another instance's process: same command line, that one's pipe.
    other = _spawn(["/bin/sleep", "3005"], stdout=other_w)
    os.close(ours_w)
    os.close(other_w)
    try:
        intent = _intent(["/bin/sleep", "3005"], ticks,
                         pipes=[{"child_fd": 1, "ino": os.fstat(ours_r).st_ino, "priority": 30}])
        assert state_mod.find_intended([intent], set(), {os.getpid()}) == {}
        intent[4]["pipes"] = []  # no pipe of its own to tell them apart: the command line decides
        assert state_mod.find_intended([intent], set(), {os.getpid()}) == {
            1: (other.pid, state_mod.proc_start_time(other.pid))}
    finally:
        os.close(ours_r)
        os.close(other_r)
        _finish(other)


def test_an_answered_intent_and_an_old_journal_are_read_as_before(tmp_path):
    journal = tmp_path / "state.json.journal"
    journal.write_text(
        '["spawn","svc","a",4242,{"start":1,"pipes":[]},1]\n'      # a format-2 journal line
        '["intent","svc","b",5,{"argv":["x"],"path":"x"},2]\n'
        '["spawn","svc","b",4343,{"start":6,"pipes":[]},3]\n'
        '["intent","svc","b",7,{"argv":["x"],"path":"x"}')     # torn by the crash
    records = state_mod.load_journal(str(journal), 0)
    assert [r[0] for r in records] == ["spawn", "intent", "spawn"]
    # Every intent is answered by a later spawn line: nothing to look for.
    assert state_mod.resolve_intents(records, {"services": []}, [1]) is records

