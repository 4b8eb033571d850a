"""/etc/init.d/pyprocd: valid busybox-ash shell, and the `service set` it makes.

The init script is run the way rc.common runs `start` for a USE_PROCD
script (procd_open_service; start_service; procd_close_service, which calls
service_triggers; then service_started), against stubs of procd.sh and the
UCI functions (stubs/procd_stub.sh). The recorded calls become the JSON
procd.sh would send, following the procd.sh mapping of the spec (§7).
"""

import shutil
import subprocess

import pytest

from pyprocd.core.schema import INSTANCE_KEYS
from tests.packaging.pkg_helpers import ROOT, posix_shell

FILES = ROOT / "openwrt" / "files"
INIT_SCRIPT = FILES / "etc" / "init.d" / "pyprocd"
CONFIG = FILES / "etc" / "config" / "pyprocd"
HELPER = FILES / "lib" / "functions" / "pyprocd.sh"
STUB = ROOT / "tests" / "packaging" / "stubs" / "procd_stub.sh"

SHELLS = [["busybox", "ash"], ["dash"]]



def _params(kind):
    """procd.sh's procd_set_param kinds (spec §7): the instance schema's `sh` column."""
    return {key.name for key in INSTANCE_KEYS if key.sh == kind}


TABLE_PARAMS = _params("table")
ARRAY_PARAMS = _params("array")
INT_PARAMS = _params("int")
BOOL_PARAMS = _params("bool")
RELOAD_DELAY = 1000  # PROCD_RELOAD_DELAY default, ms
# procd substitutes %package% from the event's data when the trigger runs.
FORWARDED_EVENT = '{"type":"config.change","data":{"package":"%package%"}}'


def _param_value(key, args):
    if key in TABLE_PARAMS:
        return {a.partition("=")[0]: a.partition("=")[2] for a in args}
    if key in ARRAY_PARAMS:
        return list(args)
    if key == "error":
        return [" ".join(args)]
    if key in INT_PARAMS:
        return int(args[0])
    if key in BOOL_PARAMS:
        return args[0] not in ("0", "")
    return args[0]


def procd_messages(records):
    """The `ubus call service set` messages the recorded procd_* calls make."""
    messages, msg, inst, seq = [], None, None, 0
    for name, *args in records:
        if name == "procd_open_service":
            msg, seq = {"name": args[0], "instances": {}}, 0
            if len(args) > 1:
                msg["script"] = args[1]
        elif name == "procd_open_instance":
            seq += 1
            inst = msg["instances"].setdefault(args[0] if args else f"instance{seq}", {})
        elif name == "procd_set_param":
            inst[args[0]] = _param_value(args[0], args[1:])
        elif name == "procd_append_param":
            extra = _param_value(args[0], args[1:])
            if args[0] in inst and args[0] in TABLE_PARAMS:
                inst[args[0]].update(extra)
            elif args[0] in inst:
                inst[args[0]] += extra
            else:
                inst[args[0]] = extra
        elif name == "procd_close_instance":
            if inst.get("respawn") == []:
                inst["respawn"] = ["3600", "5", "5"]
            inst = None
        elif name == "procd_add_reload_trigger":
            for package in args:
                action = ["run_script", f"/etc/init.d/{msg['name']}", "reload"]
                msg.setdefault("triggers", []).append(
                    ["config.change", ["if", ["eq", "package", package], action], RELOAD_DELAY]
                )
        elif name == "procd_add_raw_trigger":
            event, delay, *command = args
            msg.setdefault("triggers", []).append([event, [["run_script", *command]], int(delay)])
        elif name == "procd_close_service":
            messages.append(msg)
    return messages


def run_start(shell, tmp_path, config_text):
    """Run `start` of the init script; return (records, stderr)."""
    conf_dir = tmp_path / "config"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "pyprocd").write_text(config_text)
    log = tmp_path / "procd.log"
    log.write_text("")
    driver = f"""
. "{STUB}"
initscript="{INIT_SCRIPT}"
name=pyprocd
. "$initscript"
procd_open_service "$name" "$initscript"
start_service
procd_close_service
if type service_started >/dev/null 2>&1; then service_started; fi
"""
    env = {"PATH": "/usr/bin:/bin", "UCI_CONFIG_DIR": str(conf_dir), "PROCD_STUB_LOG": str(log)}
    out = subprocess.run(
        [*shell, "-c", driver], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    records = [line.split("\x1f")[:-1] for line in log.read_text().splitlines()]
    return records, out.stderr


def shell_or_skip(shell):
    if not shutil.which(shell[0]):
        pytest.skip(f"{shell[0]} not installed")
    return shell


@pytest.mark.parametrize("path", [INIT_SCRIPT, HELPER], ids=["init.d", "helper"])
def test_shell_files_parse_under_ash(path):
    subprocess.run([*posix_shell(), "-n", str(path)], check=True, timeout=30)


def test_init_script_is_an_rc_common_procd_script():
    text = INIT_SCRIPT.read_text()
    assert text.startswith("#!/bin/sh /etc/rc.common\n")
    assert "\nUSE_PROCD=1\n" in text
    assert "\nSTART=" in text and "\nSTOP=" in text


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_default_config_starts_pyprocd_under_its_own_object(shell, tmp_path):
    records, _ = run_start(shell_or_skip(shell), tmp_path, CONFIG.read_text())
    assert procd_messages(records) == [
        {
            "name": "pyprocd",
            "script": str(INIT_SCRIPT),
            "instances": {
                "instance1": {
                    "command": ["/usr/bin/pyprocd", "--object", "pyprocd", "--syslog", "/dev/log"],
                    "respawn": ["3600", "5", "0"],  # retry 0: respawn forever
                    "term_timeout": 15,
                    "stderr": True,
                }
            },
            "triggers": [
                [
                    "config.change",
                    ["if", ["eq", "package", "pyprocd"],
                     ["run_script", "/etc/init.d/pyprocd", "reload"]],
                    RELOAD_DELAY,
                ],
                # every config.change is handed on to pyprocd's object
                ["config.change", [["run_script", "/bin/ubus", "call", "pyprocd", "event",
                                    FORWARDED_EVENT]], 100],
            ],
        }
    ]
    # rc.common's service_started: the next boot scripts wait for the object.
    assert ["ubus", "-t", "10", "wait_for", "pyprocd"] in records


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_options_reach_the_command_line(shell, tmp_path):
    config = """
config pyprocd 'main'
	option socket '/tmp/test ubus.sock'
	option object 'supervisor'
	option syslog '/tmp/log sock'
	option term_timeout '30'
	option respawn_timeout '2'
"""
    records, _ = run_start(shell_or_skip(shell), tmp_path, config)
    [message] = procd_messages(records)
    instance = message["instances"]["instance1"]
    assert instance["command"] == [
        "/usr/bin/pyprocd", "-s", "/tmp/test ubus.sock", "--object", "supervisor",
        "--syslog", "/tmp/log sock",
    ]
    assert instance["respawn"] == ["3600", "2", "0"]
    assert instance["term_timeout"] == 30
    assert ["ubus", "-s", "/tmp/test ubus.sock", "-t", "10", "wait_for", "supervisor"] in records
    assert message["triggers"][1] == [
        "config.change",
        [["run_script", "/bin/ubus", "-s", "/tmp/test ubus.sock", "call", "supervisor", "event",
          FORWARDED_EVENT]],
        100,
    ]


@pytest.mark.parametrize(
    "section",
    ["option enabled '0'", "option object 'service'"],
    ids=["disabled", "object-service"],
)
def test_no_instance_when_disabled_or_meant_to_replace_procd(section, tmp_path):
    records, stderr = run_start(posix_shell(), tmp_path, f"config pyprocd 'main'\n\t{section}\n")
    # An empty instances table makes procd stop a running pyprocd.
    assert procd_messages(records) == [
        {"name": "pyprocd", "script": str(INIT_SCRIPT), "instances": {}, "triggers": [
            ["config.change", ["if", ["eq", "package", "pyprocd"],
                               ["run_script", "/etc/init.d/pyprocd", "reload"]], RELOAD_DELAY]
        ]}
    ]
    assert not [r for r in records if r[0] == "ubus"]
    if "service" in section:
        assert "not starting under procd" in stderr
