"""Another process's flock on the config never freezes the daemon.

libuci takes a shared flock on a config file while it reads it. Any local
user who can read /etc/config/pyprocd can hold an exclusive flock on it; a
daemon that waits for its lock inside the event loop then answers nothing
(start-up and every reload). pyprocd tries the lock without blocking and
retries on a timer (a bounded number of times, then it reads without it),
so it keeps answering and applies the file once the lock is gone.
"""

import subprocess
import sys

from pyprocd.daemon.settings import DeclaredServices
from pyprocd.uci.files import LOCK_TRY, ConfigLocked
from pyprocd.uci.store import Store
from tests.uci.test_chain_e2e import CONFIG, instance_pids, stop, system, wait_for  # noqa: F401 - system: the fixture

GAMMA = "\nconfig service 'gamma'\n\toption command '/bin/sleep 2030'\n"

LOCKER = """
import fcntl, sys
f = open(sys.argv[1], "rb")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
"""


def hold_lock(path):
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert locker.stdout.readline() == "locked\n"
    return locker


def release(locker):
    locker.stdin.close()
    locker.wait(60)
    locker.stdout.close()


def test_the_daemon_answers_while_its_config_is_locked_and_applies_it_afterwards(system):  # noqa: F811
    bus, conf, _sock, _env, tmp_path, daemon = system
    assert wait_for(lambda: daemon.poll() is not None or len(instance_pids(bus)) == 3)
    locker = hold_lock(conf / "pyprocd")
    try:
        with open(conf / "pyprocd", "a") as f:  # same file, same lock: written in place
            f.write(GAMMA)
        status, _ = bus.call("service", "event",
                             {"type": "config.change", "data": {"package": "pyprocd"}})
        assert status == 0
        # the reload is due now; the daemon must still answer
        status, _ = bus.call("service", "list", {}, timeout=30)
        assert status == 0, "the daemon did not answer while the config was locked"
        assert daemon.poll() is None
    finally:
        release(locker)
    assert wait_for(lambda: ("gamma", "instance1") in instance_pids(bus))
    log = (tmp_path / "daemon.err").read_text()
    assert "locked by another process" in log and "Traceback" not in log


def test_a_locked_file_raises_config_locked_when_not_waiting(tmp_path):
    (tmp_path / "p").write_text(CONFIG)
    locker = hold_lock(tmp_path / "p")
    try:
        store = Store(confdir=str(tmp_path), conf2dir="", savedir=str(tmp_path / "s"),
                      lock=LOCK_TRY)
        try:
            store.load("p")
            raise AssertionError("no ConfigLocked")
        except ConfigLocked as e:
            assert e.path == str(tmp_path / "p")
    finally:
        release(locker)
    assert store.load("p").section("alpha") is not None


class FakeLoop:
    def __init__(self):
        self.timers = []

    def call_later(self, delay, callback, *args):
        self.timers.append((delay, callback, args))


def test_declared_services_retry_while_locked_then_read_without_the_lock(tmp_path):
    (tmp_path / "pyprocd").write_text(CONFIG)
    calls, logs = [], []
    loop = FakeLoop()
    declared = DeclaredServices(lambda method, msg: calls.append((method, msg["name"])) or (0, None),
                                str(tmp_path), log=lambda m, p=None: logs.append(m),
                                savedir=str(tmp_path / "save"), call_later=loop.call_later)
    locker = hold_lock(tmp_path / "pyprocd")
    try:
        assert declared.apply() is False and calls == []
        assert declared.apply() is False and len(loop.timers) == 1  # one retry pending, not two
        retries = 0
        while loop.timers and not calls:  # the retries, on the loop's timers
            delay, callback, args = loop.timers.pop()
            assert 0 < delay <= 5
            callback(*args)
            retries += 1
        # bounded: after the last retry the file is read as it is
        assert calls and retries <= 20 and not loop.timers
        assert sum("locked by another process" in m for m in logs) == 1
        assert any("without the lock" in m for m in logs)
    finally:
        release(locker)
    # the lock is free: read normally, nothing scheduled
    calls.clear()
    assert declared.apply() is True and calls and not loop.timers


def test_start_up_reads_a_locked_config_at_once(tmp_path):
    from types import SimpleNamespace

    from pyprocd.daemon.settings import fill_options

    (tmp_path / "pyprocd").write_text("config pyprocd 'main'\n\toption socket '/from/uci'\n")
    logs = []
    options = SimpleNamespace(confdir=str(tmp_path), socket="/default")
    locker = hold_lock(tmp_path / "pyprocd")
    try:
        fill_options(options, {"socket": "/default"}, log=lambda m, p=None: logs.append(m))
    finally:
        release(locker)
    assert options.socket == "/from/uci"
    assert len(logs) == 1 and "locked by another process" in logs[0]
