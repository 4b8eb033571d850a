"""Init scripts shaped like real packages, through `pyprocd initd` under busybox ash, against the daemon.

Each script (tests/initd/scripts) runs start -> reload after a UCI change ->
stop against a real bus and daemon (tests/e2e/stack.py), its UCI in the
test's own config directory. What the daemon then holds is read back with
`service list`, so the test sees what the script told procd.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from tests.e2e.stack import Stack, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
pytestmark = pytest.mark.skipif(shutil.which("busybox") is None,
                                reason="init scripts run under busybox ash (apt-get install busybox)")


class Host:
    """A bus + daemon, a config dir, and `pyprocd initd` / `pyprocd uci` runs against them."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.stack = Stack(tmp_path)
        self.confdir = tmp_path / "config"
        self.initd = tmp_path / "init.d"
        self.initd.mkdir()
        # everything the runs write stays in the test's directory
        self.env = dict(os.environ, PYTHONPATH=SRC, TMPDIR=str(tmp_path),
                        PYPROCD_UCI_SAVEDIR=str(tmp_path / "uci-save"))

    def script(self, name):
        path = self.initd / name
        shutil.copy(os.path.join(HERE, "scripts", name), path)
        os.chmod(path, 0o755)
        return path

    def config(self, package, text):
        (self.confdir / package).write_text(text)

    def initd_run(self, name, action, *args, env=None):
        p = subprocess.run([sys.executable, "-m", "pyprocd", "initd", "-s", self.stack.socket,
                            "-c", str(self.confdir), str(self.initd / name), action, *args],
                           env=dict(self.env, **(env or {})), capture_output=True, text=True,
                           timeout=120, check=False)
        return p.returncode, p.stdout, p.stderr

    def uci(self, *args):
        subprocess.run([sys.executable, "-m", "pyprocd", "uci", "-c", str(self.confdir), *args],
                       env=self.env, check=True, timeout=60)

    def service(self, name):
        status, reply = self.stack.call("list", {"name": name, "verbose": True})
        assert status == 0
        return (reply or {}).get(name)

    def running(self, name):
        svc = self.service(name) or {}
        return {k: v for k, v in svc.get("instances", {}).items() if v.get("running")}


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path)
    # a syslog receiver, as on a router: a jail with `log` needs the socket to exist
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind(h.stack.syslog)
    h.stack.start()
    yield h
    h.stack.close()
    log.close()


KITDHCP = """config dnsmasq 'main'
\toption port '53'
\toption domain 'lan'
\tlist server '1.1.1.1'
\tlist server '9.9.9.9'

config dnsmasq 'guest'
\toption port '5353'
\toption domain 'guest'
"""


def test_dnsmasq_like_service_start_reload_stop(host):
    host.script("kitdns")
    host.config("kitdhcp", KITDHCP)
    assert host.initd_run("kitdns", "start") == (0, "", "")
    assert wait_for(lambda: set(host.running("kitdns")) == {"main", "guest"})
    svc = host.service("kitdns")
    assert svc["instances"]["main"]["command"] == [
        "/bin/sh", "-c", "exec sleep 3600", "kitdns", "--port=53", "--domain=lan",
        "--server=1.1.1.1", "--server=9.9.9.9"]
    assert svc["instances"]["guest"]["respawn"] == {"threshold": 3600, "timeout": 5, "retry": 5}
    triggers = svc["triggers"]
    assert ["config.change", ["if", ["eq", "package", "kitdhcp"],
                              ["run_script", "/etc/init.d/kitdns", "reload"]], 1000] in triggers
    assert triggers[1][0] == "interface.*"
    pids = {k: v["pid"] for k, v in host.running("kitdns").items()}

    host.uci("set", "kitdhcp.guest.port=5454")
    host.uci("commit", "kitdhcp")
    assert host.initd_run("kitdns", "reload")[0] == 0
    # only the changed instance restarts
    assert wait_for(lambda: host.running("kitdns").get("guest", {}).get("pid", pids["guest"])
                    != pids["guest"])
    now = host.running("kitdns")
    assert now["main"]["pid"] == pids["main"]
    assert "--port=5454" in now["guest"]["command"]
    assert host.initd_run("kitdns", "status") == (0, "running\n", "")

    assert host.initd_run("kitdns", "stop")[0] == 0
    assert wait_for(lambda: host.service("kitdns") is None)
    assert host.initd_run("kitdns", "status") == (3, "inactive\n", "")


def test_dropbear_like_jailed_service_start_reload_stop(host):
    host.script("kitssh")
    host.config("kitssh", "config dropbear 'main'\n\toption port '22'\n")
    # PROCD_DEBUG=1 shows the message as sent
    rc, out, err = host.initd_run("kitssh", "start", env={"PROCD_DEBUG": "1"})
    assert (rc, out) == (0, "")
    sent = json.loads(err)
    assert sent["instances"]["instance1"]["jail"] == {
        "name": "kitssh", "log": True,
        "mount": {"/etc/passwd": "0", "/etc/group": "0", "/bin/sleep": "0"}}
    assert wait_for(lambda: "instance1" in host.running("kitssh")), host.service("kitssh")
    inst = host.service("kitssh")["instances"]["instance1"]
    assert inst["command"][-2:] == ["-p", "22"]

    host.uci("set", "kitssh.main.port=2222")
    host.uci("commit", "kitssh")
    assert host.initd_run("kitssh", "reload")[0] == 0
    assert host.service("kitssh")["instances"]["instance1"]["command"][-2:] == ["-p", "2222"]

    assert host.initd_run("kitssh", "stop")[0] == 0
    assert wait_for(lambda: host.service("kitssh") is None)


KITVAL = """config worker 'good'
\toption port '8080'
\toption mode 'fast'
\tlist peer '10.0.0.1'

config worker 'bad'
\toption port '99999'
\toption mode 'turbo'
"""


def test_validated_service_refuses_a_bad_section_until_it_is_fixed(host):
    host.script("kitval")
    host.config("kitval", KITVAL)
    rc, out, err = host.initd_run("kitval", "start")
    assert rc == 0 and out == ""
    assert "kitval.bad.port=99999 validates as port with false" in err
    assert "kitval: section bad is invalid, not started" in err
    assert wait_for(lambda: set(host.running("kitval")) == {"good"})
    good = host.service("kitval")["instances"]["good"]
    assert good["command"][-3:] == ["8080", "fast", "10.0.0.1"]
    status, rules = host.stack.call("validate", {"package": "kitval"})
    assert status == 0
    assert rules == {"kitval": {"worker": {"port": "port", "mode": "or(fast,safe)",
                                           "peer": "list(ipaddr)"}}}

    host.uci("set", "kitval.bad.port=9090")
    host.uci("set", "kitval.bad.mode=safe")
    host.uci("commit", "kitval")
    rc, out, err = host.initd_run("kitval", "reload")
    assert (rc, err) == (0, "")
    assert wait_for(lambda: set(host.running("kitval")) == {"good", "bad"})
    assert host.service("kitval")["instances"]["bad"]["command"][-2:] == ["9090", "safe"]

    assert host.initd_run("kitval", "stop")[0] == 0
    assert wait_for(lambda: host.service("kitval") is None)


BROKEN = """#!/bin/sh /etc/rc.common
USE_PROCD=1
start_service() {
	procd_open_instance
	procd_set_param command /bin/sleep 3600
	if [ -n "$X" ]; then
	procd_close_instance
}
"""


def test_a_script_with_a_syntax_error_fails_like_on_openwrt_and_registers_nothing(host):
    (host.initd / "kitbroken").write_text(BROKEN)
    rc, out, err = host.initd_run("kitbroken", "start")
    assert (rc, out) == (2, "")
    assert err.endswith(f'{host.initd}/kitbroken: line 8: syntax error: unexpected "}}" '
                        '(expecting "fi")\n')
    assert host.service("kitbroken") is None


UNKNOWN_KEY = """#!/bin/sh /etc/rc.common
USE_PROCD=1
start_service() {
	procd_open_instance
	procd_set_param command /bin/sleep 3600
	procd_set_param no_such_key value
	procd_append_param also_unknown value
	procd_close_instance
}
"""


def test_unknown_procd_set_param_keys_are_dropped_silently_as_on_openwrt(host):
    (host.initd / "kitkeys").write_text(UNKNOWN_KEY)
    rc, out, err = host.initd_run("kitkeys", "start", env={"PROCD_DEBUG": "1"})
    assert (rc, out) == (0, "")
    assert json.loads(err)["instances"] == {"instance1": {"command": ["/bin/sleep", "3600"]}}
    assert wait_for(lambda: "instance1" in host.running("kitkeys"))


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash not installed")
def test_the_kit_runs_under_dash_too(host):
    """dash has no `export -n` and no descriptors above 9: the kit works around both."""
    from pyprocd.initd.install import install_for_host

    host.script("kitdns")
    host.config("kitdhcp", KITDHCP)
    kit = host.tmp / "kit"
    install_for_host(str(kit), socket=host.stack.socket)
    (kit / "var" / "lock").mkdir(parents=True)
    env = dict(host.env, PYPROCD_KIT_ROOT=str(kit), UCI_CONFIG_DIR=str(host.confdir),
               PATH=f"{kit}/usr/bin:{kit}/sbin:{os.environ['PATH']}")

    def run(action):
        p = subprocess.run(["dash", str(kit / "etc/rc.common"), str(host.initd / "kitdns"), action],
                           env=env, capture_output=True, text=True, timeout=120, check=False)
        return p.returncode, p.stdout, p.stderr

    assert run("start") == (0, "", "")
    assert wait_for(lambda: set(host.running("kitdns")) == {"main", "guest"})
    assert run("status") == (0, "running\n", "")
    assert run("stop") == (0, "", "")
    assert wait_for(lambda: host.service("kitdns") is None)


def test_initd_usage_and_a_missing_script(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC, TMPDIR=str(tmp_path))

    def run(*argv):
        p = subprocess.run([sys.executable, "-m", "pyprocd", "initd", *argv], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
        return p.returncode, p.stderr

    usage = "usage: pyprocd initd [-s SOCKET] [-c CONFDIR] SCRIPT ACTION [ARGS...]\n"
    assert run() == (2, usage)
    assert run("-x", "script") == (2, usage)
    assert run(str(tmp_path / "nope"), "start") == (2, f"pyprocd initd: {tmp_path}/nope: no such script\n")
    assert os.listdir(tmp_path) == []  # no kit left behind


def test_a_script_without_the_rc_common_line_runs_as_it_is(tmp_path):
    script = tmp_path / "plain"
    script.write_text('#!/bin/sh\necho "plain $1 $2"\nexit 4\n')
    script.chmod(0o755)
    p = subprocess.run([sys.executable, "-m", "pyprocd", "initd", str(script), "go", "now"],
                       env=dict(os.environ, PYTHONPATH=SRC, TMPDIR=str(tmp_path)),
                       capture_output=True, text=True, timeout=60, check=False)
    assert (p.returncode, p.stdout) == (4, "plain go now\n")
