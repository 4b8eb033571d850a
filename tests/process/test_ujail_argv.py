"""The argv procd builds for /sbin/ujail (spec jail.md §12), used with the setting
`option jail 'ujail'`: fixed option order, -e names and mount paths in strcmp
order, mount "1" -> -w else -r, `--` before the command."""

import os

import pytest

from pyprocd.common import SpawnError
from pyprocd.loop import Loop
from pyprocd.process import jail as jailmod
from pyprocd.process.spawn import Spawner


class Spec:
    def __init__(self, jail=None, command=("/usr/sbin/d", "-f"), **kw):
        self.jail = {} if jail is None else jail
        self.command = list(command)
        self.term_timeout = kw.pop("term_timeout", 5)
        self.seccomp = kw.pop("seccomp", None)
        self.capabilities = kw.pop("capabilities", None)
        self.user = kw.pop("user", None)
        self.group = kw.pop("group", None)
        self.no_new_privs = kw.pop("no_new_privs", False)
        self.env = tuple(kw.pop("env", {}).items())
        self.raw = kw.pop("raw", {})
        self.trace = False
        assert not kw


CASES = [
    (Spec(), ["-t", "5"]),
    (Spec({"name": "d", "procfs": True, "log": True}, term_timeout=9),
     ["-t", "9", "-n", "d", "-p", "-l"]),
    (Spec({"hostname": "h", "ubus": True, "udebug": True, "sysfs": True, "ronly": True}),
     ["-t", "5", "-h", "h", "-s", "-u", "-D", "-o"]),
    (Spec({"netns": True, "userns": True, "cgroupsns": True, "console": True, "name": "n"}),
     ["-t", "5", "-n", "n", "-N", "-f", "-F", "-y"]),
    (Spec({"log": True}, seccomp="/etc/seccomp/d.json", user="nobody", group="nogroup",
          capabilities="/etc/capabilities/d.json", no_new_privs=True),
     ["-t", "5", "-S", "/etc/seccomp/d.json", "-U", "nobody", "-G", "nogroup",
      "-C", "/etc/capabilities/d.json", "-c", "-l"]),
    (Spec({"procfs": True}, raw={"extroot": "/mnt/root", "overlaydir": "/tmp/o",
                                 "tmpoverlaysize": "10M"}),
     ["-t", "5", "-p", "-R", "/mnt/root", "-O", "/tmp/o", "-T", "10M"]),
    (Spec({"name": "c", "immediately": True, "pidfile": "/var/run/c.pid", "requirejail": True},
          raw={"bundle": "/srv/c"}),
     ["-t", "5", "-n", "c", "-i", "-P", "/var/run/c.pid", "-J", "/srv/c", "-E"]),
    (Spec({"log": True}, env={"ZED": "1", "ALPHA": "2", "Beta": "3"}),
     ["-t", "5", "-l", "-e", "ALPHA", "-e", "Beta", "-e", "ZED"]),
    (Spec({"mount": {"/etc/z": "0", "/etc/a": "1", "/usr/b": "x"}}),
     ["-t", "5", "-w", "/etc/a", "-r", "/etc/z", "-r", "/usr/b"]),
    (Spec({"setns": [{"pid": 12, "namespaces": ["net", "uts"]}], "procfs": True}),
     ["-t", "5", "-p", "-j", "12:net,uts"]),
    # every key at once: the complete order
    (Spec({"name": "all", "hostname": "h", "procfs": True, "sysfs": True, "ubus": True,
           "udebug": True, "log": True, "ronly": True, "netns": True, "userns": True,
           "cgroupsns": True, "console": True, "immediately": True, "pidfile": "/p",
           "requirejail": True, "mount": {"/m": "1"},
           "setns": [{"pid": 3, "namespaces": ["ipc"]}]},
          seccomp="/s", user="u", group="g", capabilities="/c", no_new_privs=True,
          env={"E": "v"}, raw={"extroot": "/r", "overlaydir": "/o", "tmpoverlaysize": "1M",
                               "bundle": "/b"}),
     ["-t", "5", "-n", "all", "-h", "h", "-S", "/s", "-U", "u", "-G", "g", "-C", "/c", "-c",
      "-p", "-s", "-u", "-D", "-l", "-o", "-N", "-f", "-F", "-y", "-R", "/r", "-O", "/o",
      "-T", "1M", "-i", "-P", "/p", "-J", "/b", "-E", "-e", "E", "-w", "/m", "-j", "3:ipc"]),
    # values of the wrong type count as absent, as procd's blobmsg policy has it
    (Spec({"procfs": 1, "name": 5, "log": True}), ["-t", "5", "-l"]),
]


@pytest.mark.parametrize("spec, options", CASES)
def test_ujail_argv(spec, options):
    assert jailmod.ujail_argv(spec) == ["/sbin/ujail", *options, "--", "/usr/sbin/d", "-f"]


class _Sink:
    path = None


def test_ujail_setting_execs_ujail_with_procds_argv_or_refuses(monkeypatch, tmp_path):
    spawner = Spawner(Loop(), _Sink(), base_env={b"PATH": b"/bin"})
    spawner.use_ujail = True
    spec = Spec({"log": True}, env={"A": "1"}, user="nobody", no_new_privs=True)
    spec.trace, spec.nice, spec.limits, spec.uid, spec.gid = False, 0, (), 65534, 65534
    spec.group_kill, spec.stdout, spec.stderr = False, False, False
    monkeypatch.setattr(jailmod, "UJAIL", str(tmp_path / "ujail"))
    with pytest.raises(SpawnError, match="ujail not found"):
        spawner._plan(spec)
    (tmp_path / "ujail").write_text("")
    plan = spawner._plan(spec)
    assert plan.argv == [os.fsencode(a) for a in jailmod.ujail_argv(spec)]
    assert plan.argv[0] == os.fsencode(tmp_path / "ujail")
    assert (plan.uid, plan.gid, plan.hardening, plan.jail) == (0, 0, None, None)
    assert plan.env[b"A"] == b"1"  # set in the child; ujail imports it by name (-e A)


def test_setting_jail_ujail_is_read_from_etc_config_pyprocd(tmp_path):
    from pyprocd.daemon.settings import load_settings

    assert load_settings(str(tmp_path)).jail is None  # the built-in jail
    (tmp_path / "pyprocd").write_text("config pyprocd 'main'\n\toption jail 'ujail'\n")
    assert load_settings(str(tmp_path)).jail == "ujail"


def test_uci_declared_service_carries_a_jail(tmp_path):
    from pyprocd.daemon.settings import declared_services

    (tmp_path / "pyprocd").write_text(
        "config service 'web'\n\toption command '/usr/sbin/httpd -f'\n"
        "\toption jail 'web log procfs'\n\tlist jail_mount '/www'\n"
        "\tlist jail_mount_rw '/tmp/web'\n")
    message = declared_services(str(tmp_path))["web"]
    jail = message["instances"]["instance1"]["jail"]
    assert jail == {"name": "web", "log": True, "procfs": True,
                    "mount": {"/www": "0", "/tmp/web": "1"}}
