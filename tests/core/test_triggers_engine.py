"""The run_script queue with real scripts and real time (spec §9.3).

Assertions are about order and counts, never durations; waits are
conditions with generous deadlines.
"""

import os

import pytest

from pyprocd.core.triggers import TriggerEngine
from pyprocd.loop import Loop

DEADLINE = 60.0

SCRIPT = """#!/bin/sh
# usage: script NAME [GATE]: logs start/end; with GATE, waits for that file first
echo "start $1" >> "{log}"
if [ -n "$2" ]; then
    while [ ! -e "$2" ]; do sleep 0.02; done
fi
echo "end $1" >> "{log}"
"""


@pytest.fixture
def env(tmp_path):
    loop = Loop()
    loop.strict = True
    log = tmp_path / "log"
    script = tmp_path / "script.sh"
    script.write_text(SCRIPT.format(log=log))
    script.chmod(0o755)
    engine = TriggerEngine(loop)

    def lines():
        return log.read_text().split("\n")[:-1] if log.exists() else []

    yield loop, engine, str(script), lines, tmp_path
    engine.close()
    loop.run_until(engine.idle, DEADLINE)
    loop.close()


def trigger(event, argv, delay=None):
    entry = [event, ["run_script"] + list(argv)]
    if delay is not None:
        entry.append(delay)
    return entry


def test_debounce_never_shortens(env):
    loop, engine, script, lines, _ = env
    engine.set_triggers("svc", None, [
        trigger("slow", [script, "X"], 1500),
        trigger("fast", [script, "X"], 10),
        trigger("other", [script, "Y"], 400),
    ])
    engine.event("slow", {})   # X due in 1.5 s
    engine.event("other", {})  # Y due in 0.4 s
    engine.event("fast", {})   # must not pull X forward
    assert loop.run_until(lambda: len(lines()) == 4 and engine.idle(), DEADLINE)
    assert lines() == ["start Y", "end Y", "start X", "end X"]


def test_debounce_extends(env):
    loop, engine, script, lines, _ = env
    engine.set_triggers("svc", None, [
        trigger("short", [script, "X"], 100),
        trigger("long", [script, "X"], 2500),
        trigger("other", [script, "Y"], 800),
    ])
    engine.event("short", {})  # X due in 0.1 s
    engine.event("other", {})  # Y due in 0.8 s
    engine.event("long", {})   # X re-armed to 2.5 s: after Y
    engine.event("short", {})
    assert loop.run_until(lambda: len(lines()) == 4 and engine.idle(), DEADLINE)
    assert lines() == ["start Y", "end Y", "start X", "end X"]


def test_event_while_running_queues_exactly_one_more_run(env):
    loop, engine, script, lines, tmp_path = env
    gate = tmp_path / "gate"
    engine.set_triggers("svc", "inst", [trigger("config.change", [script, "X", str(gate)])])
    engine.event("config.change", {"package": "x"})
    assert loop.run_until(lambda: lines() == ["start X"], DEADLINE)
    for _ in range(5):  # all collapse into one extra run
        engine.event("config.change", {"package": "x"})
    gate.touch()
    assert loop.run_until(lambda: engine.idle() and len(lines()) == 4, DEADLINE)
    assert lines() == ["start X", "end X", "start X", "end X"]
    assert engine.started == 2


def test_scripts_run_one_at_a_time(env):
    loop, engine, script, lines, tmp_path = env
    gate = tmp_path / "gate"
    engine.set_triggers("a", None, [trigger("go", [script, "A", str(gate)])])
    engine.set_triggers("b", None, [trigger("go", [script, "B", str(gate)])])
    engine.set_triggers("c", "i1", [trigger("go", [script, "C", str(gate)])])
    engine.event("go", {})
    assert loop.run_until(lambda: lines() == ["start A"], DEADLINE)
    # B and C become due but must wait: nothing else starts while A runs
    b, c = (script, "B", str(gate)), (script, "C", str(gate))
    assert loop.run_until(lambda: engine.pending().get(b) == engine.pending().get(c) == "queued",
                          DEADLINE)
    assert lines() == ["start A"]
    gate.touch()
    assert loop.run_until(lambda: engine.idle() and len(lines()) == 6, DEADLINE)
    assert lines() == ["start A", "end A", "start B", "end B", "start C", "end C"]


def test_prefix_pattern_and_substitution(env):
    loop, engine, script, lines, _ = env
    engine.set_triggers("net", None, [
        ["interface.*", ["if", ["eq", "interface", "wan"],
                         ["run_script", script, "%interface%-%action%"]]],
    ])
    engine.event("interface.update", {"interface": "lan", "action": "ifup"})
    engine.event("network.interface", {"interface": "wan", "action": "x"})
    engine.event("interface.down", {"interface": "wan", "action": "ifdown", "n": 5})
    assert loop.run_until(lambda: engine.idle() and len(lines()) == 2, DEADLINE)
    assert lines() == ["start wan-ifdown", "end wan-ifdown"]


def test_same_argv_from_two_services_coalesces(env):
    loop, engine, script, lines, _ = env
    engine.set_triggers("a", None, [trigger("config.change", [script, "S"], 50)])
    engine.set_triggers("b", None, [trigger("config.change", [script, "S"], 50)])
    engine.event("config.change", {})
    assert loop.run_until(lambda: engine.idle() and len(lines()) == 2, DEADLINE)
    assert engine.started == 1


def test_removed_triggers_no_longer_fire(env):
    loop, engine, script, lines, _ = env
    engine.set_triggers("a", None, [trigger("e", [script, "A"])])
    engine.set_triggers("a", "i1", [trigger("e", [script, "I"])])
    engine.set_triggers("b", None, [trigger("e", [script, "B"])])
    engine.remove("a", "i1")
    engine.event("e", {})
    assert loop.run_until(lambda: engine.idle() and len(lines()) == 4, DEADLINE)
    assert sorted(lines()) == ["end A", "end B", "start A", "start B"]
    engine.remove("a")
    engine.set_triggers("b", None, [])
    engine.event("e", {})  # requests are registered synchronously
    assert engine.idle() and engine.started == 2


def test_missing_program_does_not_block_the_queue(env):
    loop, engine, script, lines, tmp_path = env
    engine.set_triggers("a", None, [
        trigger("e", [str(tmp_path / "does-not-exist")]),
        trigger("e", [script, "after"]),
    ])
    engine.event("e", {})
    assert loop.run_until(lambda: engine.idle() and len(lines()) == 2, DEADLINE)
    assert lines() == ["start after", "end after"]


def test_script_children_are_reaped(env):
    loop, engine, script, lines, _ = env
    engine.set_triggers("a", None, [trigger("e", [script, "Z"])])
    engine.event("e", {})
    assert loop.run_until(lambda: engine.idle() and len(lines()) == 2, DEADLINE)
    # No child of ours (zombie or not) still runs the script. Not "no child at
    # all": other tests in this process may legitimately have children.
    assert _children_running(script) == []


def _children_running(path):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        # a zombie has an empty cmdline: count every child of ours that is one
        if ppid == os.getpid() and (path.encode() in cmdline or not cmdline):
            found.append(int(entry))
    return found


def test_close_drops_waiting_commands_and_lets_the_running_one_finish(env):
    loop, engine, script, lines, tmp_path = env
    gate = tmp_path / "gate"
    engine.set_triggers("a", None, [trigger("run", [script, "R", str(gate)]),
                                    trigger("later", [script, "L"], 5000)])
    engine.event("run", {})
    assert loop.run_until(lambda: lines() == ["start R"], DEADLINE)
    engine.event("later", {})
    engine.event("run", {})  # an extra run, dropped by close()
    engine.close()
    assert engine.pending() == {(script, "R", str(gate)): "running"}
    gate.touch()
    assert loop.run_until(engine.idle, DEADLINE)
    assert lines() == ["start R", "end R"]
