"""End to end over a real bus: UCI-declared services start with the daemon, and
`pyprocd uci set; pyprocd uci commit; pyprocd reload-config` restarts exactly the
instance whose configuration changed (pids prove it). All processes are ours,
started and stopped by pid.
"""

import os
import signal
import subprocess
import sys

import pytest

from pyprocd.bus.client import BlockingUbus
from pyprocd.loop import Loop

DEADLINE = 60

CONFIG = """
config pyprocd 'main'

config service 'alpha'
\toption command '/bin/sleep 2001'

config service 'beta'

config instance 'b1'
\toption service 'beta'
\toption command '/bin/sleep 2002'

config instance 'b2'
\toption service 'beta'
\toption command '/bin/sleep 2003'
"""


def pyprocd(*args, env):
    return subprocess.run([sys.executable, "-m", "pyprocd", *args], check=False,
                          capture_output=True, text=True, env=env, timeout=DEADLINE)


def wait_for(condition, timeout=DEADLINE):
    loop = Loop()
    try:
        return loop.run_until(condition, timeout)
    finally:
        loop.close()


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(DEADLINE)


@pytest.fixture
def system(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "pyprocd").write_text(CONFIG)
    sock = str(tmp_path / "ubus.sock")
    env = dict(os.environ, PYPROCD_UCI_SAVEDIR=str(tmp_path / "tmp-uci"),
               PYPROCD_UCI_CONF2DIR=str(tmp_path / "var-run-uci"))
    procs = []
    daemon_err = open(tmp_path / "daemon.err", "w")  # noqa: SIM115 - closed below
    procs.append(subprocess.Popen([sys.executable, "-m", "pyprocd", "bus", "-s", sock], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    assert wait_for(lambda: os.path.exists(sock))
    procs.append(daemon := subprocess.Popen(
        [sys.executable, "-m", "pyprocd", "-s", sock, "--syslog", str(tmp_path / "nolog"),
         "--confdir", str(conf), "--state-file", str(tmp_path / "state.json"),
         "--initd-dir", str(tmp_path)], env=env,
        stdout=subprocess.DEVNULL,
        stderr=daemon_err))
    bus = None
    try:
        bus = BlockingUbus(sock)
        yield bus, conf, sock, env, tmp_path, daemon
    finally:
        if bus is not None:
            bus.close()
        for proc in reversed(procs):  # daemon first: it stops its instances
            stop(proc)
        daemon_err.close()


def instance_pids(bus):
    status, replies = bus.call("service", "list", {})
    if status:
        return {}
    listing = replies[0] if isinstance(replies, list) and replies else (replies or {})
    return {(svc, name): inst.get("pid") for svc, info in listing.items()
            for name, inst in info.get("instances", {}).items() if inst.get("running")}


def test_uci_change_restarts_only_the_changed_instance(system):
    bus, conf, sock, env, tmp_path, daemon = system
    assert wait_for(lambda: daemon.poll() is not None or len(instance_pids(bus)) == 3)
    assert daemon.poll() is None, (tmp_path / "daemon.err").read_text()
    before = instance_pids(bus)
    md5 = str(tmp_path / "config.md5")
    assert pyprocd("reload-config", "-c", str(conf), "-m", md5, "-s", sock, env=env).returncode == 0

    assert pyprocd("uci", "-c", str(conf), "set", "pyprocd.b2.command=/bin/sleep 2004",
                   env=env).returncode == 0
    assert pyprocd("uci", "-c", str(conf), "commit", env=env).returncode == 0
    result = pyprocd("reload-config", "-c", str(conf), "-m", md5, "-s", sock, env=env)
    assert result.returncode == 0, result.stderr

    b2 = ("beta", "b2")
    assert wait_for(lambda: instance_pids(bus).get(b2) not in (None, before[b2]))
    after = instance_pids(bus)
    assert set(after) == set(before)
    assert {k: after[k] for k in after if k != b2} == {k: before[k] for k in before if k != b2}

    # a broken file: libuci's message in the log, nothing stops
    (conf / "pyprocd").write_text(CONFIG + "config\n")
    result = pyprocd("reload-config", "-c", str(conf), "-m", md5, "-s", sock, env=env)
    assert result.returncode == 0
    message = "Parse error (invalid command) at line 16, byte 0"
    assert pyprocd("uci", "-c", str(conf), "show", "pyprocd", env=env).stderr == \
        f"uci: {message}\n"
    # the daemon logs the same libuci message (no syslog here: it goes to stderr)
    assert wait_for(lambda: message in (tmp_path / "daemon.err").read_text())
    assert "Traceback" not in (tmp_path / "daemon.err").read_text()
    status, _ = bus.call("service", "list", {})  # the daemon still answers
    assert status == 0
    assert instance_pids(bus) == after


def test_reload_trigger_of_an_init_script_style_service(system):
    """procd_add_reload_trigger's shape: config.change for a package runs a script."""
    bus, conf, sock, env, tmp_path, daemon = system
    out = tmp_path / "reloads"
    script = tmp_path / "initd.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{out}"\n')
    script.chmod(0o755)
    (conf / "foo").write_text("config foo 'main'\n\toption x '1'\n")
    assert wait_for(lambda: daemon.poll() is not None or len(instance_pids(bus)) == 3)
    status, _ = bus.call("service", "set", {
        "name": "foo",
        "instances": {"instance1": {"command": ["/bin/sleep", "2010"]}},
        "triggers": [["config.change", ["if", ["eq", "package", "foo"],
                                        ["run_script", str(script), "reload"]], 200]],
    })
    assert status == 0
    md5 = str(tmp_path / "config.md5")
    assert pyprocd("reload-config", "-c", str(conf), "-m", md5, "-s", sock, env=env).returncode == 0
    assert pyprocd("uci", "-c", str(conf), "set", "foo.main.x=2", env=env).returncode == 0
    assert pyprocd("uci", "-c", str(conf), "commit", "foo", env=env).returncode == 0
    assert pyprocd("reload-config", "-c", str(conf), "-m", md5, "-s", sock, env=env).returncode == 0
    assert wait_for(lambda: out.exists())
    assert out.read_text() == "reload\n"


def test_watch_turns_notifications_into_trigger_events(system):
    """An instance with `watch network.interface`: netifd-style notifications run triggers."""
    from pyprocd.bus.client import UbusClient, UbusObject

    bus, _conf, sock, _env, tmp_path, daemon = system
    out = tmp_path / "ifaces"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{out}"\n')
    script.chmod(0o755)
    assert wait_for(lambda: daemon.poll() is not None or len(instance_pids(bus)) == 3)
    status, _ = bus.call("service", "set", {
        "name": "network",
        "instances": {"netifd": {"command": ["/bin/sleep", "2020"],
                                 "watch": ["network.interface"]}},
        "triggers": [["interface.*", ["if", ["eq", "interface", "wan"],
                                      ["run_script", str(script), "%interface%"]]]],
    })
    assert status == 0
    loop = Loop()
    netifd = UbusClient(loop, sock, log=lambda *a: None)
    try:
        netifd.start()
        added = []
        obj = UbusObject("network.interface", {"status": ({}, lambda inv, data: 0)})
        netifd.add_object(obj, added.append)
        # the daemon subscribes when the object appears (ubus.object.add)
        assert loop.run_until(lambda: added == [0] and obj.has_subscribers, DEADLINE)
        netifd.notify(obj, "interface.update", {"interface": "lan"})
        netifd.notify(obj, "interface.down", {"interface": "wan"})
        assert loop.run_until(lambda: out.exists(), DEADLINE)
    finally:
        netifd.close()
        loop.close()
    assert out.read_text() == "wan\n"
