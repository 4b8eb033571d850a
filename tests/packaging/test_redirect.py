"""/lib/functions/pyprocd.sh: one line makes an init script talk to pyprocd.

A stub `ubus` binary on PATH records the argv it gets; the helper's `ubus`
function must hand it procd.sh's calls with the object renamed, and leave
everything else alone. Run under busybox ash and dash.
"""

import shutil
import subprocess

import pytest

from tests.packaging.pkg_helpers import ROOT

HELPER = ROOT / "openwrt" / "files" / "lib" / "functions" / "pyprocd.sh"
DOCUMENTED_LINE = "[ -f /lib/functions/pyprocd.sh ] && . /lib/functions/pyprocd.sh"

UBUS_STUB = """#!/bin/sh
for a; do printf '%s\\037' "$a"; done >>"$UBUS_STUB_LOG"
printf '\\n' >>"$UBUS_STUB_LOG"
case " $* " in *" list $UBUS_STUB_MISSING "*) exit 4 ;; esac
exit 0
"""

UCI_STUB = """#!/bin/sh
[ "$*" = "-q get pyprocd.main.object" ] && echo "$UCI_STUB_OBJECT"
"""


@pytest.fixture(params=[["busybox", "ash"], ["dash"]], ids=lambda s: s[0])
def shell(request):
    if not shutil.which(request.param[0]):
        pytest.skip(f"{request.param[0]} not installed")
    return request.param


def run(shell, tmp_path, script, uci_object=None, **env_extra):
    """Run `script` after sourcing the helper; return the recorded ubus argvs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ubus").write_text(UBUS_STUB)
    (bin_dir / "ubus").chmod(0o755)
    if uci_object is not None:
        (bin_dir / "uci").write_text(UCI_STUB)
        (bin_dir / "uci").chmod(0o755)
    log = tmp_path / "ubus.log"
    log.write_text("")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "UBUS_STUB_LOG": str(log),
        "UCI_STUB_OBJECT": uci_object or "",
        **env_extra,
    }
    out = subprocess.run(
        [*shell, "-c", f'. "{HELPER}"\n{script}'],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stderr
    return [line.split("\x1f")[:-1] for line in log.read_text().splitlines()], out.stdout


def test_procd_sh_calls_go_to_pyprocd(shell, tmp_path):
    calls, _ = run(shell, tmp_path, """
ubus call service set '{"name": "x", "instances": {"a b": {}}}'
ubus call service delete '{"name": "x"}'
status=$(ubus call service list '{"name": "x", "verbose": true}')
ubus -S -s /var/run/ubus/ubus.sock -t 5 call service signal '{"name": "x"}'
ubus -v list service
ubus wait_for service network.interface
ubus subscribe service
""")
    assert calls == [
        ["call", "pyprocd", "set", '{"name": "x", "instances": {"a b": {}}}'],
        ["call", "pyprocd", "delete", '{"name": "x"}'],
        ["call", "pyprocd", "list", '{"name": "x", "verbose": true}'],
        ["-S", "-s", "/var/run/ubus/ubus.sock", "-t", "5", "call", "pyprocd", "signal",
         '{"name": "x"}'],
        ["-v", "list", "pyprocd"],
        ["wait_for", "pyprocd", "network.interface"],
        ["subscribe", "pyprocd"],
    ]


def test_other_objects_and_verbs_are_untouched(shell, tmp_path):
    calls, _ = run(shell, tmp_path, """
ubus call network.interface.lan status
ubus call service.extra list
ubus send service '{"a": 1}'
ubus listen service
ubus call system board service
ubus list
""")
    assert calls == [
        ["call", "network.interface.lan", "status"],
        ["call", "service.extra", "list"],
        ["send", "service", '{"a": 1}'],
        ["listen", "service"],
        ["call", "system", "board", "service"],
        ["list"],
    ]


def test_object_name_from_uci_env_or_default(shell, tmp_path):
    from_uci, _ = run(shell, tmp_path, "ubus call service list", uci_object="super")
    assert from_uci == [["call", "super", "list"]]
    from_env, _ = run(shell, tmp_path, "ubus call service list", uci_object="super",
                      PYPROCD_OBJECT="mine")
    assert from_env == [["call", "mine", "list"]]
    default, _ = run(shell, tmp_path, "ubus call service list")  # no uci at all
    assert default == [["call", "pyprocd", "list"]]
    # Where pyprocd owns `service` (no procd), the helper changes nothing.
    owner, _ = run(shell, tmp_path, "ubus call service list", uci_object="service")
    assert owner == [["call", "service", "list"]]


def test_fallback_to_procd_only_when_asked(shell, tmp_path):
    strict, _ = run(shell, tmp_path, "ubus call service list", UBUS_STUB_MISSING="pyprocd")
    assert strict == [["call", "pyprocd", "list"]]
    fallback, _ = run(shell, tmp_path, "ubus -t 3 call service list",
                      UBUS_STUB_MISSING="pyprocd", PYPROCD_FALLBACK="1")
    assert fallback == [["-t", "3", "list", "pyprocd"], ["-t", "3", "call", "service", "list"]]
    present, _ = run(shell, tmp_path, "ubus call service list", PYPROCD_FALLBACK="1")
    assert present == [["list", "pyprocd"], ["call", "pyprocd", "list"]]


def test_documented_line_in_an_init_script_with_procd_sh_after_it(shell, tmp_path):
    # rc.common sources the init script first, procd.sh afterwards; procd.sh's
    # own helper calls the `ubus` command by name, inside $(...) too.
    init_script = tmp_path / "myservice"
    init_script.write_text(
        "#!/bin/sh /etc/rc.common\n"
        + DOCUMENTED_LINE.replace("/lib/functions/pyprocd.sh", str(HELPER)) + "\n"
        + "USE_PROCD=1\n"
    )
    procd_sh_like = """
_procd_ubus_call() { local cmd="$1"; ubus call service "$cmd" "$JSON"; }
_procd_running() { echo "$(ubus call service list "$JSON")"; }
"""
    calls, _ = run(shell, tmp_path, f"""
. "{init_script}"
{procd_sh_like}
JSON='{{"name": "myservice"}}'
_procd_ubus_call set
_procd_running >/dev/null
""")
    assert calls == [
        ["call", "pyprocd", "set", '{"name": "myservice"}'],
        ["call", "pyprocd", "list", '{"name": "myservice"}'],
    ]


def test_helper_documents_the_one_line():
    assert DOCUMENTED_LINE in HELPER.read_text()
