"""The cffi shim making real calls; process-wide changes happen in subprocesses."""

import errno
import json
import os
import subprocess
import sys

import pytest

from pyprocd.process import shim


def in_subprocess(code, timeout=120):
    """Run code (which sets `out`) in a fresh interpreter; returns out (JSON)."""
    script = "import json, os, sys\nfrom pyprocd.process import shim\n" + code + \
        "\nprint(json.dumps(out))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_prctl_switches_take_effect():
    out = in_subprocess("""
import signal
shim.set_name("pyprocd-test-name-long")
shim.set_pdeathsig(signal.SIGTERM)
before = shim.get_no_new_privs()
shim.set_no_new_privs()
shim.set_child_subreaper(True)
status = open("/proc/self/status").read()
out = {"comm": open("/proc/self/comm").read().strip(), "nnp_before": before,
       "nnp": shim.get_no_new_privs(), "subreaper": shim.get_child_subreaper(),
       "status_nnp": "NoNewPrivs:\\t1" in status}
""")
    assert out == {"comm": "pyprocd-test-na", "nnp_before": False, "nnp": True,
                   "subreaper": True, "status_nnp": True}


def test_errors_raise_oserror_with_errno():
    with pytest.raises(OSError) as caught:
        shim.capbset_read(4096)
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(OSError) as caught:
        shim.prctl(-12345)
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(OSError) as caught:
        shim.prlimit(9999)
    assert caught.value.errno == errno.EINVAL


def test_capget_matches_proc_status():
    effective, permitted, inheritable = shim.capget()
    with open("/proc/self/status") as f:
        status = dict(line.split(":\t") for line in f.read().splitlines()
                      if line.startswith("Cap"))
    assert effective == int(status["CapEff"], 16)
    assert permitted == int(status["CapPrm"], 16)
    assert inheritable == int(status["CapInh"], 16)


def test_prlimit_uses_64_bit_values():
    out = in_subprocess("""
import resource
big = 1 << 40   # does not fit a 32-bit rlim_t
old = shim.prlimit(resource.RLIMIT_FSIZE, big, shim.RLIM_INFINITY)
now = shim.prlimit(resource.RLIMIT_FSIZE)
shim.prlimit(resource.RLIMIT_CORE, 0, None)
out = {"old_hard": old[1], "now": list(now), "py": list(resource.getrlimit(resource.RLIMIT_FSIZE)),
       "core": list(shim.prlimit(resource.RLIMIT_CORE))}
""")
    # A 32-bit kernel keeps limits in an unsigned long: prlimit64 makes anything
    # at or above its ULONG_MAX infinite. A truncating shim would read back 0.
    kept_or_clamped = out["now"][0] if out["now"][0] == shim.RLIM_INFINITY else 1 << 40
    assert out["now"] == [kept_or_clamped, shim.RLIM_INFINITY]
    assert out["py"] == [1 << 40 if kept_or_clamped == 1 << 40 else resource_infinity(),
                         resource_infinity()]
    assert out["core"][0] == 0


def resource_infinity():
    import resource
    return resource.RLIM_INFINITY


def test_prlimit_on_another_process():
    import resource
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        _, hard = shim.prlimit(resource.RLIMIT_NOFILE, pid=child.pid)
        shim.prlimit(resource.RLIMIT_NOFILE, 64, None, pid=child.pid)
        with open(f"/proc/{child.pid}/limits") as f:
            line = next(x for x in f if x.startswith("Max open files"))
        assert line.split()[3] == "64"
        assert shim.prlimit(resource.RLIMIT_NOFILE, pid=child.pid) == (64, hard)
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def test_daemon_modules_do_not_load_cffi_until_hardening_is_needed(tmp_path):
    policy = tmp_path / "p.json"
    policy.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    out = in_subprocess(f"""
from pyprocd.process import harden, spawn, seccomp, caps
def loaded():
    return [m for m in ("_cffi_backend", "cffi", "pycparser") if m in sys.modules]
before = loaded()
harden.prepare(False, None, None)
nothing = loaded()
plan = harden.prepare(True, None, {str(policy)!r})
out = {{"before": before, "nothing": nothing, "after": loaded(), "shim": shim.loaded()}}
""")
    assert out == {"before": [], "nothing": [], "after": ["_cffi_backend"], "shim": True}


def test_filter_program_bounds():
    with pytest.raises(ValueError):
        shim.FilterProgram([])
    with pytest.raises(ValueError):
        shim.FilterProgram([(6, 0, 0, 0x7FFF0000)] * 4097)
    assert len(shim.FilterProgram([(6, 0, 0, 0x7FFF0000)])) == 1


def test_no_shim_module_touches_a_hand_packed_struct():
    """Layouts come from cffi declarations only: no struct.pack in the runtime modules."""
    here = os.path.dirname(shim.__file__)
    for name in ("shim.py", "harden.py", "caps.py", "seccomp.py", "_shim_ffi.py"):
        with open(os.path.join(here, name)) as f:
            assert "struct.pack" not in f.read(), name
