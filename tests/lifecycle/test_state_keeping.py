"""What the crash-survival state keeps: nothing is forgotten because of a crash."""

import os

import pytest

from pyprocd.core.manager import ServiceManager
from pyprocd.daemon import main as daemon_main
from pyprocd.daemon import state as state_mod
from pyprocd.daemon.survival import attach
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

    def spawn(self, spec, on_exit):
        raise AssertionError("nothing is started in these tests")

    def kill(self, pid, sig, group=False):
        return 0


class _Crash(Exception):
    pass


def _daemon(tmp_path):
    loop = Loop()
    mgr = ServiceManager(loop, _Spawner())
    daemon = daemon_main.Daemon(loop, mgr, _Client(), _Api(), lambda m, p=0: None)

    class options:
        socket = str(tmp_path / "ubus.sock")
        object = "service"

    life = _Life(str(tmp_path / "state.json"))
    attach(daemon, life, options)
    return daemon, mgr, life


def test_crash_with_nothing_running_keeps_the_state(tmp_path):
    # Services with no running process (autostart off, failed, waiting to
    # respawn) are state too: a crash must not make the next daemon forget them.
    daemon, mgr, life = _daemon(tmp_path)
    assert mgr.call("set", {"name": "manual", "autostart": False, "instances": {
        "off": {"command": ["sleep", "1"]}}})[0] == 0

    path = str(tmp_path / "state.json")

    def crash():
        # Once the set is on file (the write is debounced): then die.
        if b'"manual"' not in open(path, "rb").read():
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
    assert mgr.call("set", {"name": "manual", "autostart": False, "instances": {
        "off": {"command": ["sleep", "1"]}}})[0] == 0
    daemon.loop.call_soon(daemon.shutdown)
    assert daemon.run() == 0
    assert not os.path.exists(tmp_path / "state.json")
    assert life.finished
