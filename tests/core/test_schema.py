"""The instance schema is one table: parsing, the restart diff, `list` and the UCI
translation all follow its rows, so a key is added, changed or dropped in one place.

The test walks the table: every instance key needs a sample here (a new row
fails `test_every_key_has_a_sample` until it gets one), and then its parse,
diff, listing and UCI option are checked from the row alone.
"""

from types import SimpleNamespace

import pytest

from pyprocd.api.service import dump_instance
from pyprocd.bus.ubuscli import parse_options
from pyprocd.core import schema
from pyprocd.core.instance import Instance
from pyprocd.core.spec import FIELDS, InstanceSpec, needs_restart, parse_instance
from pyprocd.daemon import settings
from pyprocd.uci.parser import parse_package as parse_uci

# key: (a value, a different value, the same as a UCI option of /etc/config/pyprocd)
SAMPLES = {
    "command": (["/bin/sleep", "1000"], ["/bin/sleep", "1001"], "/bin/sleep 1000"),
    "bundle": ("/srv/b1", "/srv/b2", None),
    "term_timeout": (7, 8, "7"),
    "error": (["broken"], ["other"], "broken"),
    "env": ({"A": "1"}, {"A": "2"}, "A=1"),
    "data": ({"k": "v"}, {"k": "w"}, "k=v"),
    "limits": ({"core": "0"}, {"core": "1"}, "core=0"),
    "netdev": (["lo"], ["eth9"], "lo"),
    "reload_signal": (1, 10, "HUP"),
    "respawn": (["3600", "5", "5"], ["3600", "6", "5"], "3600 5 5"),
    "trace": (True, False, "1"),
    "no_new_privs": (True, False, "1"),
    "seccomp": ("/etc/seccomp/a.json", "/etc/seccomp/b.json", "/etc/seccomp/a.json"),
    "capabilities": ("/etc/capabilities/a.json", "/etc/capabilities/b.json", "/etc/capabilities/a.json"),
    "pidfile": ("/var/run/a.pid", "/var/run/b.pid", "/var/run/a.pid"),
    "user": ("nobody", "daemon", "nobody"),
    "group": ("nogroup", "daemon", "nogroup"),
    "jail": ({"name": "a", "log": True, "mount": {}}, {"name": "b", "mount": {}}, "a log"),
    "extroot": ("/x1", "/x2", "/x1"),
    "overlaydir": ("/o1", "/o2", "/o1"),
    "tmpoverlaysize": ("10M", "20M", "10M"),
    "triggers": ([["config.change", []]], [], None),
    "watchdog": (["1", "20"], ["1", "21"], "1 20"),
    "group_kill": (True, False, "1"),
    "zygote": (["json", "socket"], ["json"], "json socket"),
    "file": (["/etc/a.conf"], ["/etc/b.conf"], "/etc/a.conf"),
    "watch": (["network.interface"], ["other"], "network.interface"),
    "nice": (5, 6, "5"),
    "facility": ("local0", "local1", "local0"),
    "stdout": (True, False, "1"),
    "stderr": (True, False, "1"),
}


class Facts:
    def lookup_user(self, name):
        return {"nobody": (65534, 65534), "daemon": (1, 1)}.get(name)

    def lookup_group(self, name):
        return {"nogroup": 65534, "daemon": 1}.get(name)

    def ifindex(self, name):
        return 1 if name == "lo" else 0

    def file_md5(self, path):
        return path.rjust(32, "0")[-32:]

    def have_ujail(self):
        return True


def parse(raw):
    return parse_instance("i", raw, Facts())


def instance(spec):
    service = SimpleNamespace(name="svc", version=0)
    return Instance(SimpleNamespace(), service, spec)


def listed(raw, verbose=True):
    return dump_instance(instance(parse(raw)), verbose)


def test_every_key_has_a_sample():
    assert set(SAMPLES) == {k.name for k in schema.INSTANCE_KEYS}


@pytest.mark.parametrize("key", schema.INSTANCE_KEYS, ids=lambda k: k.name)
def test_a_value_of_the_row_type_fills_its_fields(key):
    a, _b, _uci = SAMPLES[key.name]
    assert schema.TYPE_CHECKS[key.type](a)
    spec = parse({key.name: a})
    assert spec.problems == ()
    assert any(getattr(spec, f) != FIELDS[f] for f in key.fields)
    # and nothing outside the row's fields (the spec's own bookkeeping aside)
    changed = {f for f in FIELDS if getattr(spec, f) != FIELDS[f]} - {"name", "raw"}
    assert changed <= set(key.fields)


@pytest.mark.parametrize("key", schema.INSTANCE_KEYS, ids=lambda k: k.name)
def test_a_value_of_another_type_counts_as_absent_or_is_an_error(key):
    wrong = 5 if key.type != schema.INT32 else "5"
    spec = parse({key.name: wrong})
    untouched = all(getattr(spec, f) == FIELDS[f] for f in key.fields)
    assert untouched
    if spec.problems:  # pyprocd's fail-closed keys say why
        assert key.name in ("command", "user", "group")


@pytest.mark.parametrize("key", schema.INSTANCE_KEYS, ids=lambda k: k.name)
def test_a_change_restarts_exactly_when_the_row_says_compared(key):
    a, b, _uci = SAMPLES[key.name]
    old, new = parse({key.name: a}), parse({key.name: b})
    assert needs_restart(old, new) is key.compared
    assert needs_restart(old, parse({key.name: a})) is False


@pytest.mark.parametrize("key", schema.INSTANCE_KEYS, ids=lambda k: k.name)
def test_list_shows_a_key_where_its_row_says(key):
    a, _b, _uci = SAMPLES[key.name]
    verbose, plain = listed({key.name: a}, True), listed({key.name: a}, False)
    base_verbose, base_plain = listed({}, True), listed({}, False)
    shown = {name for name in verbose if verbose[name] != base_verbose.get(name)}
    if key.name == "error":  # shown as `errors`, with pyprocd's own problems
        assert verbose["errors"] == a
        return
    if key.dump is None:
        assert verbose == base_verbose
        return
    assert shown == {key.name}
    assert (key.name in plain) is not key.verbose
    assert {name for name in plain if plain[name] != base_plain.get(name)} <= {key.name}


def test_list_order_is_the_table_order_and_procds():
    everything = {name: sample[0] for name, sample in SAMPLES.items()
                  if name not in ("error", "bundle")}
    out = listed(everything)
    rows = [k.name for k in schema.LISTED]
    assert list(out) == [name for name in rows if name in out]
    # spec §5, in procd's emission order (jail/mount/setns are not listed yet)
    procd = ["running", "pid", "command", "term_timeout", "exit_code", "env", "data",
             "limits", "netdev", "reload_signal", "respawn", "trace", "no_new_privs",
             "seccomp", "capabilities", "pidfile", "user", "group", "extroot", "overlaydir",
             "tmpoverlaysize", "triggers", "watchdog"]
    assert [name for name in out if name in procd] == [name for name in procd if name in out]


def uci_section(options):
    text = "config service 'svc'\n" + "".join(
        f"\toption {name} '{value}'\n" for name, value in options.items())
    pkg = parse_uci(text, "pyprocd")
    return pkg.section("svc")


@pytest.mark.parametrize("key", schema.INSTANCE_KEYS, ids=lambda k: k.name)
def test_uci_option_becomes_the_key(key):
    a, _b, text = SAMPLES[key.name]
    problems = []
    msg = settings.instance_message(uci_section({key.name: text} if text else {}), problems=problems)
    assert problems == []
    if key.uci is None:
        assert text is None and key.name not in msg
        return
    assert text is not None, f"{key.name} has a UCI option kind: give it a sample option"
    assert parse(msg) == parse({key.name: a})
    assert msg[key.name] == a or key.name in ("reload_signal", "respawn")


def test_declared_services_can_use_group_kill_and_jail():
    section = uci_section({"command": "/bin/sleep 1", "group_kill": "1",
                           "jail": "svc log procfs requirejail"})
    msg = settings.instance_message(section)
    assert msg["group_kill"] is True
    assert msg["jail"] == {"name": "svc", "log": True, "procfs": True, "requirejail": True,
                           "mount": {}}


def test_jail_mounts_from_uci_lists():
    text = ("config service 'svc'\n\toption jail 'svc'\n"
            "\tlist jail_mount '/etc/a'\n\tlist jail_mount '/etc/b'\n\tlist jail_mount_rw '/var/c'\n")
    msg = settings.instance_message(parse_uci(text, "pyprocd").section("svc"))
    assert msg["jail"] == {"name": "svc", "mount": {"/etc/a": "0", "/etc/b": "0", "/var/c": "1"}}


def test_unknown_jail_flag_is_reported():
    problems = []
    settings.instance_message(uci_section({"jail": "svc nosuchflag"}), problems=problems)
    assert problems == ["jail: unknown flag 'nosuchflag'"]


def test_spec_fields_are_the_rows_fields():
    from_rows = {f for k in schema.INSTANCE_KEYS for f in k.fields}
    assert set(FIELDS) == from_rows | {"name", "raw", "problems", "warnings"}
    assert InstanceSpec.__slots__ == tuple(FIELDS)


def test_one_default_respawn():
    assert settings.DEFAULT_RESPAWN is schema.DEFAULT_RESPAWN


@pytest.mark.parametrize("text,value", [("--5", 0), ("-5", -5), ("+-5", 0), (" 12x", 12),
                                        ("99999999999", 2**31 - 1), ("abc", 0)])
def test_the_ubus_cli_timeout_uses_cs_atoi(text, value):
    opts, _ = parse_options(["-t", text, "list"])
    assert opts.timeout == value


def test_procd_sh_kinds_are_spec_section_7():
    kinds = {}
    for key in schema.INSTANCE_KEYS:
        if key.sh is not None:
            kinds.setdefault(key.sh, set()).add(key.name)
    assert kinds == {
        "table": {"env", "data", "limits"},
        "array": {"command", "netdev", "file", "respawn", "watch", "watchdog"},
        "error": {"error"},
        "int": {"nice", "term_timeout"},
        "signal": {"reload_signal"},
        "string": {"pidfile", "user", "group", "seccomp", "capabilities", "facility",
                   "extroot", "overlaydir", "tmpoverlaysize"},
        "bool": {"stdout", "stderr", "no_new_privs"},
    }


def test_the_init_script_kits_procd_sh_builds_each_key_as_its_row_says():
    # The kit's procd.sh (what init scripts source under pyprocd) against the `sh` column.
    from pathlib import Path

    import pyprocd

    kit = Path(pyprocd.__file__).parent / "initd" / "kit" / "procd.sh"
    if not kit.exists():
        pytest.skip("no init-script kit in this tree")
    text = kit.read_text()
    body = text[text.index("_procd_set_param() {"):]
    body = body[:body.index("\tesac")]
    arms = {}
    for pattern, action in zip(body.split(")\n")[0:-1], body.split(")\n")[1:]):
        names = pattern.rsplit("\n", 1)[-1].strip()
        if "json_add_object" in action:
            kind = "table"
        elif "kill -l" in action:
            kind = "signal"
        elif 'json_add_string "" "$1"' in action:
            kind = "error"
        elif "json_add_array" in action:
            kind = "array"
        elif "json_add_int" in action:
            kind = "int"
        elif "json_add_boolean" in action:
            kind = "bool"
        else:
            kind = "string"
        for name in names.split("|"):
            arms[name] = kind
    rows = {key.name: key.sh for key in schema.INSTANCE_KEYS if key.sh is not None}
    assert arms.pop("vrf") == "string"  # sent by procd.sh, ignored by procd and pyprocd
    assert arms == rows
