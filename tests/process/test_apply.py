"""HardenPlan applied to real children (our own fork/exec, in spawn.py's call order);
the kernel's view is read from the exec'd program's /proc/self/status."""

import json
import os
import signal
import sys

import pytest

from pyprocd.process import harden
from tests.conftest import needs_root
from tests.process.childproc import run_hardened

# Prints its /proc/self/status, then what chdir("/") and kill(self, 0/SIGCHLD) gave.
PROBE = r"""
import os, signal, sys
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return str(e.errno)
sys.stdout.write(open("/proc/self/status").read())
print("chdir=" + attempt(lambda: os.chdir("/")))
print("kill0=" + attempt(lambda: os.kill(os.getpid(), 0)))
print("killchld=" + attempt(lambda: os.kill(os.getpid(), signal.SIGCHLD)))
sys.stdout.flush()
if len(sys.argv) > 1:
    os.sched_yield()
    print("survived")
"""
PYTHON = os.path.realpath(sys.executable)
# For runs as another user (the test's Python may live where nobody cannot read).
CAT_STATUS = ["/bin/cat", "/proc/self/status"]


def probe_argv(*extra):
    return [PYTHON, "-I", "-S", "-c", PROBE, *extra]


def write_json(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_no_new_privs_alone():
    plan = harden.prepare(True, None, None)
    result = run_hardened(probe_argv(), plan)
    assert result.error is None and result.exitcode == 0
    status = result.proc_status()
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "0"


def test_without_a_plan_nothing_changes():
    status = run_hardened(probe_argv(), None).proc_status()
    assert status["NoNewPrivs"] == "0" and status["Seccomp"] == "0"


def test_seccomp_errno_rule_denies_only_what_it_names(tmp_path):
    policy = write_json(tmp_path, "p.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]})
    plan = harden.prepare(False, None, policy)
    result = run_hardened(probe_argv(), plan)
    assert result.error is None, result.error
    assert result.exitcode == 0
    status = result.proc_status()
    assert status["Seccomp"] == "2"
    assert status.get("Seccomp_filters", "1") == "1"
    assert status["NoNewPrivs"] == "1"
    assert status["chdir"] == "1"          # EPERM, the policy's action
    assert status["kill0"] == "13"         # argument condition matched: EACCES
    assert status["killchld"] == "ok"      # same syscall, other argument: allowed


def test_seccomp_kill_action_kills(tmp_path):
    policy = write_json(tmp_path, "p.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["sched_yield"], "action": "SCMP_ACT_KILL_PROCESS"}]})
    result = run_hardened(probe_argv("yield"), harden.prepare(False, None, policy))
    assert result.error is None
    assert os.WIFSIGNALED(result.status)
    assert os.WTERMSIG(result.status) == signal.SIGSYS
    assert b"chdir=ok" in result.stdout and b"survived" not in result.stdout


def test_unknown_syscall_name_fails_before_fork(tmp_path):
    policy = write_json(tmp_path, "p.json", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chdir", "not_a_syscall"], "action": "SCMP_ACT_ERRNO"}]})
    with pytest.raises(harden.HardenError, match="not_a_syscall"):
        harden.prepare(False, None, policy)


CAP_NET_BIND_SERVICE, CAP_NET_RAW = 10, 13


def caps_mask(status, key):
    return int(status[key], 16)


@needs_root
def test_capabilities_for_a_root_service(tmp_path):
    path = write_json(tmp_path, "caps.json", {
        "bounding": ["CAP_NET_BIND_SERVICE", "cap_net_raw"],
        "effective": ["CAP_NET_BIND_SERVICE"], "permitted": ["CAP_NET_BIND_SERVICE"]})
    result = run_hardened(probe_argv(), harden.prepare(False, path, None))
    assert result.error is None, result.error
    status = result.proc_status()
    both = 1 << CAP_NET_BIND_SERVICE | 1 << CAP_NET_RAW
    assert caps_mask(status, "CapBnd") == both
    # uid 0 execs with its whole bounding set (kernel rule for root, as under ujail)
    assert caps_mask(status, "CapEff") == both
    assert caps_mask(status, "CapAmb") == 0
    assert status["NoNewPrivs"] == "0"


@needs_root
def test_capabilities_survive_the_switch_to_a_user_through_ambient(tmp_path):
    only = ["CAP_NET_BIND_SERVICE"]
    path = write_json(tmp_path, "caps.json", {
        "bounding": only, "effective": only, "permitted": only, "inheritable": only,
        "ambient": only})
    plan = harden.prepare(True, path, None)
    result = run_hardened(CAT_STATUS, plan, uid=65534, gid=65534)
    assert result.error is None, result.error
    status = result.proc_status()
    bit = 1 << CAP_NET_BIND_SERVICE
    assert status["Uid"].split()[0] == "65534"
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert caps_mask(status, key) == bit, key
    assert status["NoNewPrivs"] == "1"


@needs_root
def test_user_switch_without_capabilities_file_keeps_none(tmp_path):
    result = run_hardened(CAT_STATUS, harden.prepare(True, None, None), uid=65534, gid=65534)
    status = result.proc_status()
    assert caps_mask(status, "CapEff") == 0 and caps_mask(status, "CapAmb") == 0


def test_dropping_the_bounding_set_without_privilege_fails_loudly(tmp_path):
    """Run unprivileged (as nobody, or as we are when not root): the bounding set cannot
    be dropped, so the child must not exec at all."""
    path = write_json(tmp_path, "caps.json", {"bounding": []})
    plan = harden.prepare(False, path, None)
    if os.geteuid() == 0:
        # become nobody first (no keepcaps): CAP_SETPCAP is gone like in an unprivileged daemon
        import tests.process.childproc as cp
        result = _run_as_nobody_then_harden(cp, plan)
    else:
        result = run_hardened(probe_argv(), plan)
    assert result.exitcode == 127
    assert "Operation not permitted" in result.error


def _run_as_nobody_then_harden(cp, plan):
    class Unprivileged:
        def before_setuid(self):
            pass

        def after_setuid(self):
            plan.after_setuid()   # before_setuid was never called: drop happens here

        def apply_in_child(self):
            plan.apply_in_child()
    return cp.run_hardened(CAT_STATUS, Unprivileged(), uid=65534, gid=65534)


@pytest.mark.parametrize("document,reason", [
    ({"bounding": ["CAP_FLY"]}, "unknown capability 'CAP_FLY'"),
    ({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
     "ambient"),
    ({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}, "effective"),
    ({"bounding": [], "inheritable": ["CAP_KILL"], "permitted": ["CAP_KILL"]}, "inheritable"),
    ({"bounding": "CAP_KILL"}, "list"),
    ({"bounds": []}, "unknown set"),
    (["CAP_KILL"], "JSON object"),
])
def test_capability_files_that_cannot_be_honoured(tmp_path, document, reason):
    path = write_json(tmp_path, "caps.json", document)
    with pytest.raises(harden.HardenError, match=reason):
        harden.prepare(False, path, None)


def test_capability_names_beyond_the_running_kernel_are_refused():
    from pyprocd.process import caps
    with pytest.raises(caps.CapsError, match="not supported by this kernel"):
        caps.parse({"bounding": ["CAP_CHECKPOINT_RESTORE"]}, last_cap=37)


def test_oci_config_shape_is_accepted(tmp_path):
    path = write_json(tmp_path, "config.json", {"process": {"capabilities": {
        "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}}})
    plan = harden.prepare(False, path, None)
    assert plan.caps.bounding == 1 << 5 and plan.caps.ambient == 0
    assert "CAP_KILL" in plan.summary()
