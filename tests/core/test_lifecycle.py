"""Instance life cycle with real processes: stop, respawn, restart rules, watchdog, pidfiles."""

import os
import signal

import pytest

from tests.core.harness import Supervisor


@pytest.fixture
def sup(tmp_path):
    s = Supervisor(tmp_path)
    yield s
    s.close()


def listed(sup, service, instance, verbose=False):
    status, reply = sup.call("list", {"name": service, "verbose": verbose})
    assert status == 0
    return reply[service]["instances"][instance]


def exec_done(pid, argv0):
    """True once pid runs argv0 (fork happened before; exec may not have yet)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0] == argv0.encode()
    except OSError:
        return False


def test_crash_loop_gives_up_with_detailed_notifications(sup):
    sup.call("set", {"name": "c", "instances": {"i": {
        "command": ["/bin/sh", "-c", "exit 3"], "respawn": ["3600", "0", "2"]}}})
    inst = sup.inst("c", "i")
    assert sup.wait(lambda: inst.failed)
    kinds = [t for t, _ in sup.notifications if t.startswith("instance.")]
    assert kinds.count("instance.start") == 3
    assert kinds.count("instance.respawn") == 2
    assert kinds.count("instance.fail") == 1
    fail = next(p for t, p in sup.notifications if t == "instance.fail")
    assert fail["exit_code"] == 3 and fail["respawn_count"] == 3
    assert fail["command"] == ["/bin/sh", "-c", "exit 3"]
    out = listed(sup, "c", "i", verbose=True)
    assert out["running"] is False and "respawn" not in out
    assert out["failed"] is True
    assert [e["exit_code"] for e in out["exits"]] == [3, 3, 3]
    assert any("crash loop 3 crashes" in line for line in sup.log.lines)


def test_list_keeps_the_last_five_exits_oldest_first(sup):
    sup.call("set", {"name": "h", "instances": {"i": {
        "command": ["/bin/sh", "-c", "exit 7"], "respawn": ["3600", "0", "7"]}}})
    inst = sup.inst("h", "i")
    assert sup.wait(lambda: inst.failed)
    out = listed(sup, "h", "i", verbose=True)
    # seven crashes, the last five of them shown: respawn counts 3..7 in order
    assert [e["respawn_count"] for e in out["exits"]] == [3, 4, 5, 6, 7]


def test_respawn_forever_with_retry_zero_and_counter_reset(sup, tmp_path):
    marker = tmp_path / "runs"
    sup.call("set", {"name": "r", "instances": {"i": {
        "command": ["/bin/sh", "-c", f"echo x >> {marker}"], "respawn": ["0", "0", "0"]}}})
    # threshold 0: no run is "fast", the counter stays 0, it never gives up
    assert sup.wait(lambda: marker.exists() and len(marker.read_text().split()) >= 10)
    inst = sup.inst("r", "i")
    assert inst.respawn_count == 0 and not inst.failed
    sup.call("delete", {"name": "r"})


def test_sigterm_ignored_then_sigkill_after_term_timeout(sup):
    sup.call("set", {"name": "t", "instances": {"i": {
        "command": ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
        "term_timeout": 1}}})
    inst = sup.inst("t", "i")
    pid = inst.pid
    # Wait for the trap to be installed: SigIgn of the shell has bit 15.
    assert sup.wait(lambda: _sig_ignored(pid, signal.SIGTERM))
    # A stop that removes the instance escalates (`state {"spawn": false}`
    # does not, as procd: tests/core/test_instance_states.py).
    sup.call("delete", {"name": "t"})
    assert sup.wait(lambda: not inst.running)
    assert inst.exit_code == 128 + signal.SIGKILL
    assert any("not stopped on SIGTERM, sending SIGKILL" in line for line in sup.log.lines)


def _sig_ignored(pid, sig):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def test_restart_only_for_compared_fields(sup, tmp_path):
    base = {"command": ["/bin/sleep", "1000"], "data": {"a": "1"}}
    sup.call("set", {"name": "d", "instances": {"i": base}})
    inst = sup.inst("d", "i")
    pid = inst.pid
    not_compared = dict(base, data={"a": "2"}, stdout=True, stderr=True,
                        watch=["network.interface"], triggers=[["x", ["return"]]])
    sup.call("set", {"name": "d", "instances": {"i": not_compared}})
    sup.pump(0.2)
    assert inst.pid == pid and not inst.halt
    for change in ({"env": {"A": "1"}}, {"nice": 3}, {"limits": {"nofile": "100"}},
                   {"term_timeout": 7}, {"respawn": ["10", "1", "1"]}, {"pidfile": str(tmp_path / "p")}):
        before = inst.pid
        sup.call("set", {"name": "d", "instances": {"i": dict(not_compared, **change)}})
        assert sup.wait(lambda before=before: inst.running and inst.pid != before), change
        not_compared = dict(not_compared, **change)


def test_file_md5_change_restarts(sup, tmp_path):
    conf = tmp_path / "app.conf"
    conf.write_text("one\n")
    cfg = {"command": ["/bin/sleep", "1000"], "file": [str(conf)]}
    sup.call("set", {"name": "f", "instances": {"i": cfg}})
    inst = sup.inst("f", "i")
    pid = inst.pid
    sup.call("set", {"name": "f", "instances": {"i": cfg}})  # same content: kept
    sup.pump(0.1)
    assert inst.pid == pid
    conf.write_text("two\n")
    sup.call("set", {"name": "f", "instances": {"i": cfg}})
    assert sup.wait(lambda: inst.running and inst.pid != pid)


def test_reload_signal_is_delivered_instead_of_restart(sup, tmp_path):
    got = tmp_path / "got-hup"
    script = f"trap 'echo hup >> {got}' HUP; while :; do sleep 0.05; done"
    cfg = {"command": ["/bin/sh", "-c", script], "reload_signal": 1, "env": {"V": "1"}}
    sup.call("set", {"name": "h", "instances": {"i": cfg}})
    inst = sup.inst("h", "i")
    pid = inst.pid
    assert sup.wait(lambda: _sig_caught(pid, signal.SIGHUP))
    sup.call("set", {"name": "h", "instances": {"i": dict(cfg, env={"V": "2"})}})
    assert sup.wait(lambda: got.exists() and got.read_text() == "hup\n")
    assert inst.pid == pid
    assert listed(sup, "h", "i")["env"] == {"V": "2"}


def _sig_caught(pid, sig):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def test_watchdog_expiry_with_respawn_restarts(sup):
    sup.call("set", {"name": "w", "instances": {"i": {
        "command": ["/bin/sleep", "1000"], "watchdog": ["1", "1"], "respawn": ["3600", "0", "5"]}}})
    inst = sup.inst("w", "i")
    pid = inst.pid
    assert sup.wait(lambda: inst.running and inst.pid != pid)
    assert inst.respawn_count == 0  # a requested restart is not a crash


def test_watchdog_pets_keep_it_alive(sup):
    sup.call("set", {"name": "w", "instances": {"i": {
        "command": ["/bin/sleep", "1000"], "watchdog": ["1", "1"]}}})
    inst = sup.inst("w", "i")
    pid = inst.pid
    for _ in range(6):
        sup.pump(0.3)
        assert sup.call("watchdog", {"name": "w", "instance": "i"})[0] == 0
    assert inst.pid == pid and inst.running
    assert sup.wait(lambda: "i" not in sup.mgr.services["w"].instances)  # stop petting


def test_pidfile_life_cycle(sup, tmp_path):
    pidfile = tmp_path / "svc.pid"
    sup.call("set", {"name": "p", "instances": {"i": {
        "command": ["/bin/sleep", "1000"], "pidfile": str(pidfile), "respawn": ["3600", "0", "5"]}}})
    inst = sup.inst("p", "i")
    assert pidfile.read_text() == f"{inst.pid}\n"
    old = inst.pid
    os.kill(old, signal.SIGKILL)
    assert sup.wait(lambda: inst.running and inst.pid != old)
    assert pidfile.read_text() == f"{inst.pid}\n"  # rewritten on respawn
    assert not list(tmp_path.glob("svc.pid.*"))  # no temp file left (atomic rename)
    sup.call("delete", {"name": "p"})
    assert sup.wait(lambda: not pidfile.exists())


def test_error_blocks_start_and_exec_failure_is_visible(sup):
    sup.call("set", {"name": "e", "instances": {
        "bad": {"command": ["/nonexistent/prog"], "respawn": ["3600", "0", "0"]}}})
    inst = sup.inst("e", "bad")
    assert sup.wait(lambda: inst.failed)
    out = listed(sup, "e", "bad")
    assert out["exit_code"] == 127
    assert out["errors"] == ["exec /nonexistent/prog: No such file or directory"]
    # No busy loop: one attempt, not respawned although retry 0 means forever.
    assert len(inst.exits) == 1


def test_signal_skips_instances_that_are_not_running(sup):
    sup.call("set", {"name": "s", "autostart": False, "instances": {
        "never": {"command": ["/bin/sleep", "1000"]}}})
    assert sup.call("signal", {"name": "s"}) == (4, None)
    assert sup.call("signal", {"name": "s", "instance": "never", "signal": 9}) == (4, None)


def test_exit_code_is_128_plus_signal(sup):
    sup.call("set", {"name": "k", "instances": {"i": {"command": ["/bin/sleep", "1000"]}}})
    inst = sup.inst("k", "i")
    assert sup.wait(lambda: exec_done(inst.pid, "/bin/sleep"))
    os.kill(inst.pid, signal.SIGINT)
    assert sup.wait(lambda: not inst.running)
    assert listed(sup, "k", "i")["exit_code"] == 130


def test_initd_running_is_called_on_submission_and_after_respawn(tmp_path):
    initd = tmp_path / "init.d"
    initd.mkdir()
    calls = tmp_path / "calls"
    script = initd / "svc"
    script.write_text(f"#!/bin/sh\necho \"$1\" >> {calls}\n")
    script.chmod(0o755)
    sup = Supervisor(tmp_path, initd_dir=str(initd))
    try:
        sup.call("set", {"name": "svc", "instances": {"i": {
            "command": ["/bin/sh", "-c", "sleep 0.2"], "respawn": ["3600", "0", "1"]}}})
        inst = sup.inst("svc", "i")
        assert sup.wait(lambda: inst.failed)  # two runs, one respawn, then gives up
        assert sup.wait(lambda: calls.exists() and calls.read_text().split() == ["running", "running"])
        # A service without a script in init.d is not an error.
        sup.call("set", {"name": "noscript", "instances": {}})
        assert sup.call("list", {"name": "noscript"}) == (0, {"noscript": {}})
    finally:
        sup.close()


def test_netdev_ifindex_change_restarts(tmp_path):
    """procd compares netdev by ifindex captured at submission: an interface
    that was re-created (same name, new index) restarts the instance."""
    from pyprocd.core.spec import Facts

    class Interfaces(Facts):
        def __init__(self):
            self.index = {"br-lan": 7}

        def ifindex(self, name):
            return self.index.get(name, 0)

    facts = Interfaces()
    sup = Supervisor(tmp_path, facts=facts)
    try:
        cfg = {"command": ["/bin/sleep", "1000"], "netdev": ["br-lan"]}
        sup.call("set", {"name": "n", "instances": {"i": cfg}})
        inst = sup.inst("n", "i")
        pid = inst.pid
        sup.call("set", {"name": "n", "instances": {"i": cfg}})
        sup.pump(0.1)
        assert inst.pid == pid  # same index: kept
        facts.index = {"br-lan": 12}
        sup.call("set", {"name": "n", "instances": {"i": cfg}})
        assert sup.wait(lambda: inst.running and inst.pid != pid)
    finally:
        sup.close()


def test_stop_all_waits_for_every_instance(sup):
    # A stopped instance first (sorted order): it goes away at once, and that
    # must not count as "all stopped" while the running one still runs.
    sup.call("set", {"name": "s", "instances": {
        "a_done": {"command": ["/bin/true"]},
        "b_slow": {"command": ["/bin/sh", "-c", "trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done"]}}})
    done = sup.inst("s", "a_done")
    slow = sup.inst("s", "b_slow")
    assert sup.wait(lambda: not done.running and _sig_caught(slow.pid, signal.SIGTERM))
    pid = slow.pid
    finished = []
    sup.mgr.stop_all(lambda: finished.append(os.path.exists(f"/proc/{pid}")))
    assert sup.wait(lambda: finished)
    assert finished == [False]  # called only once the running instance had exited (and was reaped)
