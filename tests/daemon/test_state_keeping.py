"""What the crash-survival state keeps: nothing is forgotten because of a crash."""

import os

import pytest

from pyprocd.api.service import call_service
from pyprocd.core.manager import ServiceManager
from pyprocd.daemon import main as daemon_main
from pyprocd.daemon import state as state_mod
from pyprocd.loop import Loop


class _Life:
    handed_over = None
    pidfile = None
    finished = False

    def __init__(self, state_file):
        class opts:
            pass
        opts.state_file = state_file
        self.opts = opts

    def notify_ready(self):
        pass

    def finish(self):
        self.finished = True


class _Client:
    on_connect = on_disconnect = None

    def start(self):
        pass

    def close(self):
        pass


class _Api:
    def publish(self, done):
        pass


class _Spawner:
    sink = None

    def spawn(self, spec, on_exit, on_forked=None, announce=None):
        raise AssertionError("nothing is started in these tests")

    def kill(self, pid, sig, group=False):
        return 0


class _Crash(Exception):
    pass


def _daemon(tmp_path):
    from pyprocd.daemon.state import StateFile
    from pyprocd.daemon.survival import Survival

    loop = Loop()
    state_file = StateFile(loop, str(tmp_path / "state.json"))
    mgr = ServiceManager(loop, _Spawner(), recorder=state_file)
    daemon = daemon_main.Daemon(loop, mgr, _Client(), _Api(), lambda m, p=0: None)
    life = _Life(state_file.path)
    survival = Survival(loop, mgr, life, sink=None, log=lambda m, p=0: None,
                        state_file=state_file, is_stopping=lambda: daemon.stopping)
    daemon.attach_survival(survival, life)
    return daemon, mgr, life


def test_crash_with_nothing_running_keeps_the_state(tmp_path):
    # Services with no running process (autostart off, failed, waiting to
    # respawn) are state too: a crash must not make the next daemon forget them.
    daemon, mgr, life = _daemon(tmp_path)
    assert call_service(mgr, "set", {"name": "manual", "autostart": False, "instances": {
        "off": {"command": ["sleep", "1"]}}})[0] == 0

    path = str(tmp_path / "state.json")

    def crash():
        # Once the set is on file (the write is debounced): then die.
        with open(path, "rb") as f:
            written = f.read()
        if b'"manual"' not in written:
            daemon.loop.call_later(0.05, crash)
            return
        raise _Crash()

    daemon.loop.strict = True
    daemon.loop.call_soon(crash)
    with pytest.raises(_Crash):
        daemon.run()
    saved, reason = state_mod.load(str(tmp_path / "state.json"))
    assert reason is None and saved is not None
    names = [s["name"] for s in saved["manager"]["services"]]
    assert names == ["manual"]
    assert not life.finished  # the pidfile stays too: this was no clean exit


def test_clean_shutdown_forgets_the_state(tmp_path):
    daemon, mgr, life = _daemon(tmp_path)
    assert call_service(mgr, "set", {"name": "manual", "autostart": False, "instances": {
        "off": {"command": ["sleep", "1"]}}})[0] == 0
    daemon.loop.call_soon(daemon.shutdown)
    assert daemon.run() == 0
    assert not os.path.exists(tmp_path / "state.json")
    assert life.finished


def _children_of(pid):
    from tests.daemon.lifecycle_helpers import descendants

    return descendants(pid)


def _runs_sleep(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(b"sleep\0")
    except OSError:
        return False


def _send_without_reply(mini, method, msg):
    import json
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(mini.control)
    sock.sendall(json.dumps({"method": method, "msg": msg}).encode() + b"\n")
    return sock


def test_sigkill_during_a_big_set_leaves_nothing_unsupervised(procs, tmp_path):
    from tests.daemon.lifecycle_helpers import Mini, alive, wait_for

    count = 200
    mini = Mini(procs, tmp_path)
    old = mini.start()
    service = {"name": "many", "instances": {
        f"i{n:03d}": {"command": ["sleep", "1000"]} for n in range(count)}}
    sock = _send_without_reply(mini, "set", service)
    # Die in the middle of the set: some instances started, not all.
    wait_for(lambda: len(_children_of(old)) >= 40, what="the set under way")
    os.kill(old, 9)
    procs.reap(old)
    sock.close()
    orphans = _children_of(os.getpid()) - {old}
    for pid in orphans:
        procs.track(pid)
    assert 40 <= len(orphans) < count  # really half-way
    mini.start()

    def supervised():
        listed = {i.get("pid") for i in mini.instances("many").values()}
        return all(pid in listed or not alive(pid) for pid in orphans)

    # Every process the killed daemon started is supervised again or gone.
    wait_for(supervised, what="no unsupervised process left")
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
    for pid in orphans:
        wait_for(lambda pid=pid: not alive(pid), what=f"pid {pid} stopped")


def test_respawn_just_before_a_crash_is_not_started_twice(procs, tmp_path):
    from tests.daemon.lifecycle_helpers import Mini, alive, wait_for

    mini = Mini(procs, tmp_path)
    daemon = mini.start()
    assert mini.call("set", {"name": "r", "instances": {
        "i": {"command": ["sleep", "1000"], "respawn": ["3600", "0", "5"]}}})[0] == 0
    first = wait_for(lambda: mini.pids("r")["i"], what="instance running")
    procs.track(first)
    wait_for(lambda: f'"pid":{first},' in (mini.state.read_text() or ""), what="state file")
    os.kill(first, 9)
    # The daemon respawns at once; it dies before its debounced state write.
    second = wait_for(lambda: next((p for p in _children_of(daemon) - {first}
                                    if _runs_sleep(p)), None),
                      what="the respawned process")
    os.kill(daemon, 9)
    procs.reap(daemon)
    procs.track(second)
    mini.start()
    assert mini.pids("r")["i"] == second  # taken back, not started a second time
    assert alive(second)
    assert _children_of(mini.pid) == set()  # nothing else started for it
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
    wait_for(lambda: not alive(second), what="instance stopped")


def test_daemon_raises_its_soft_open_file_limit(tmp_path):
    import resource
    import subprocess
    import sys

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 64:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} leaves nothing to raise")
    code = ("import resource; from pyprocd.daemon import main as m; "
            "o = m.parse_args(['-s', '/nonexistent', '--confdir', '/nonexistent', "
            f"'--syslog', {str(tmp_path / 'log')!r}]); m.build_daemon(o); "
            "print(*resource.getrlimit(resource.RLIMIT_NOFILE))")
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(hard), str(hard)]


def test_journal_lines_go_to_the_instance_not_to_its_stopping_namesake():
    # `a` was removed (still stopping, pid 500) and added again (new, not yet
    # started) before the snapshot; the journal then started the new one and
    # saw the old one exit.
    def entry(pid):
        return {"name": "a", "pid": pid, "proc": {"start": 1}}

    new, old = entry(0), entry(500)
    saved = {"services": [{"name": "svc", "instances": [new], "stopping": [old]}]}
    unknown = state_mod.apply_journal(saved, [
        ["spawn", "svc", "a", 600, {"start": 2, "pipes": []}, 1],
        ["exit", "svc", "a", 500, 9, 2]])
    assert unknown == []
    assert (new["pid"], old["pid"]) == (600, 500)
    assert old["exit_status"] == 9 and "exit_status" not in new
