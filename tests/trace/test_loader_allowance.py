"""The loader allowance: OpenWrt policies (applied at `main` by procd) work with pyprocd,
which loads the filter before execve, by allowing exactly LOADER_SYSCALLS on top.

The set is checked against what the tracer records for trivial programs on each C
library here: everything such a program does is exec, loader and libc start-up, plus
the exit that utrace always lists."""

import json
import os
import signal

import pytest

from pyprocd.process import seccomp, shim, syscalls
from pyprocd.process.seccomp import (
    LOADER_SYSCALLS,
    RET_ALLOW,
    RET_ERRNO,
    RET_KILL_PROCESS,
    compile_policy,
    evaluate,
    loader_allowance,
)
from pyprocd.trace import policy as trace_policy
from tests.trace.conftest import HERE, compile_c, recorded_names

UMDNS = HERE / "umdns.json"   # the names of OpenWrt's package/.../umdns/files/umdns.json
EXIT = set(trace_policy.FORCED)


def interpreter(path):
    with open(path, "rb") as f:
        head = f.read(4096)
    for marker in (b"ld-musl-", b"ld-linux"):
        if marker in head:
            return marker.decode()
    return None


def kill_policy(*rules):
    return {"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": list(rules)}


def run_on(program, arch, name, args=(0,) * 6):
    info = syscalls.ARCHES[arch]
    return evaluate(program, syscalls.numbers(arch)[name], info.audit_arch, args,
                    info.big_endian)


# --- the set, measured ------------------------------------------------------------------

@pytest.mark.usefixtures("tracing")
def test_glibc_start_up_is_within_the_glibc_set(tmp_path):
    if interpreter("/bin/true") != "ld-linux" or os.path.basename(
            os.path.realpath("/bin/true")) != "true":
        pytest.skip("/bin/true is not coreutils' glibc program here (busybox's main does more)")
    before_main = set(recorded_names(tmp_path, ["/bin/true"])) - EXIT
    assert before_main <= set(LOADER_SYSCALLS["glibc"]), before_main - set(LOADER_SYSCALLS["glibc"])
    assert {"execve", "mmap", "openat", "brk"} <= before_main   # it did record the loader


@pytest.mark.usefixtures("tracing")
@pytest.mark.parametrize("link", ["dynamic", "static", "library"])
@pytest.mark.parametrize("libc,compiler", [("glibc", "cc"), ("musl", "musl-gcc")])
def test_trivial_program_start_up_is_within_its_libc_set(tmp_path, libc, compiler, link):
    folder = str(tmp_path)
    if link == "library":
        compile_c(folder, "library.c", "liblibrary.so", compiler, ("-shared", "-fPIC"))
        program = compile_c(folder, "uses_library.c", "program", compiler,
                            (f"-L{folder}", "-llibrary", f"-Wl,-rpath,{folder}"))
    else:
        program = compile_c(folder, "trivial.c", "program", compiler,
                            ("-static",) if link == "static" else ())
    before_main = set(recorded_names(folder, [program])) - EXIT
    allowed = set(LOADER_SYSCALLS[libc])
    assert before_main <= allowed, before_main - allowed
    assert "execve" in before_main


# --- the rule ---------------------------------------------------------------------------

def test_only_names_the_policy_does_not_mention_are_added():
    policy = kill_policy(
        {"names": ["mmap"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mprotect"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": 4, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"})
    program = compile_policy(policy, "x86_64")
    assert run_on(program, "x86_64", "mmap") == RET_ERRNO | 1       # the policy's word stands
    assert run_on(program, "x86_64", "mprotect", (0, 0, 1)) == RET_ALLOW
    assert run_on(program, "x86_64", "mprotect", (0, 0, 5)) == RET_KILL_PROCESS   # PROT_EXEC
    for name in ("execve", "brk", "openat", "arch_prctl", "set_tid_address", "rseq"):
        assert run_on(program, "x86_64", name) == RET_ALLOW, name
    for name in ("uname", "socket", "getcwd", "ptrace", "kill"):
        assert run_on(program, "x86_64", name) == RET_KILL_PROCESS, name
    assert "mmap" not in loader_allowance(policy, "x86_64")


def test_the_allowance_is_per_arch_and_never_beyond_the_set():
    everything = set(LOADER_SYSCALLS["glibc"]) | set(LOADER_SYSCALLS["musl"])
    for arch in syscalls.ARCHES:
        added = set(loader_allowance(kill_policy(), arch))
        assert added == {n for n in everything if n in syscalls.numbers(arch)}, arch
    assert "mmap2" in loader_allowance(kill_policy(), "mipsel")
    assert "mmap2" not in loader_allowance(kill_policy(), "x86_64")
    assert "set_tls" in loader_allowance(kill_policy(), "arm")
    assert "arch_prctl" not in loader_allowance(kill_policy(), "aarch64")


def test_a_default_allow_policy_gets_nothing_added():
    policy = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_ERRNO"}]}
    assert compile_policy(policy, "x86_64") == compile_policy(policy, "x86_64", loader=False)


def test_a_policy_that_names_execve_to_kill_it_is_still_refused():
    with pytest.raises(seccomp.PolicyError, match="execve"):
        compile_policy(kill_policy({"names": ["execve"], "action": "SCMP_ACT_KILL"}), "x86_64")


# --- an OpenWrt package policy ------------------------------------------------------

@pytest.mark.parametrize("arch", sorted(syscalls.ARCHES))
def test_umdns_policy_loads_on_every_arch(arch):
    """Its names are the union over arches (fcntl and fcntl64, sigreturn, open): the
    ones this arch lacks are skipped, the others allowed, the rest killed."""
    program = compile_policy(seccomp.load(str(UMDNS)), arch)
    table = syscalls.numbers(arch)
    for name in ("socket", "bind", "recvfrom", "sendto", "epoll_ctl", "uname", "exit_group"):
        if name in table:
            assert run_on(program, arch, name) == RET_ALLOW, name
    assert run_on(program, arch, "getcwd") == RET_KILL_PROCESS
    assert run_on(program, arch, "ptrace") == RET_KILL_PROCESS


def test_a_foreign_name_in_a_denying_rule_is_still_an_error():
    policy = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["fcntl64"], "action": "SCMP_ACT_ERRNO"}]}
    with pytest.raises(seccomp.PolicyError, match="unknown on x86_64"):
        compile_policy(policy, "x86_64")


# --- a recorded policy needs no allowance -------------------------------------------

@pytest.mark.usefixtures("tracing")
def test_a_recorded_policy_runs_its_program_without_the_allowance(tmp_path):
    names = recorded_names(tmp_path, ["/bin/true"])
    document = {"defaultAction": "SCMP_ACT_KILL_PROCESS",
                "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}
    assert run_filtered(compile_policy(document, loader=False), ["/bin/true"]) == 0
    # and the filter is real: without the loader's mmap (mmap2 on 32-bit ABIs) the same
    # program dies at start
    mapping = "mmap2" if "mmap2" in names else "mmap"
    cut = {"defaultAction": "SCMP_ACT_KILL_PROCESS",
           "syscalls": [{"names": [n for n in names if n != mapping],
                         "action": "SCMP_ACT_ALLOW"}]}
    assert run_filtered(compile_policy(cut, loader=False), ["/bin/true"]) == -signal.SIGSYS


def run_filtered(instructions, argv):
    """fork, no_new_privs + the filter, exec; the exit code (negative: the signal)."""
    program = shim.FilterProgram(instructions)
    calls = (shim.PrctlCall(shim.PR_SET_NO_NEW_PRIVS, 1), shim.seccomp_call(program))
    pid = os.fork()
    if pid == 0:
        try:
            for call in calls:
                call()
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_umdns_json_is_the_shape_utrace_writes():
    document = json.loads(UMDNS.read_text())
    assert list(document) == ["defaultAction", "syscalls"]
    assert {"fcntl", "fcntl64", "sigreturn", "rt_sigreturn"} <= set(
        document["syscalls"][0]["names"])


def test_mips_loader_prctl_is_allowed_for_the_fpu_mode_only():
    program = compile_policy(kill_policy(), "mipsel")
    for mode_call in (seccomp.PR_GET_FP_MODE, seccomp.PR_SET_FP_MODE):
        assert run_on(program, "mipsel", "prctl", (mode_call, 0, 0, 0, 0, 0)) == RET_ALLOW
    assert run_on(program, "mipsel", "prctl", (22, 2, 0, 0, 0, 0)) == RET_KILL_PROCESS
    assert run_on(program, "mipsel", "prctl", (1 << 32 | 46, 0, 0, 0, 0, 0)) == RET_KILL_PROCESS
    assert run_on(compile_policy(kill_policy(), "x86_64"), "x86_64", "prctl",
                  (seccomp.PR_GET_FP_MODE, 0, 0, 0, 0, 0)) == RET_KILL_PROCESS
    # a policy that names prctl decides it alone
    named = kill_policy({"names": ["prctl"], "action": "SCMP_ACT_ERRNO"})
    assert seccomp.loader_conditions(named, "mipsel") == []
    assert run_on(compile_policy(named, "mipsel"), "mipsel", "prctl",
                  (seccomp.PR_GET_FP_MODE, 0, 0, 0, 0, 0)) == RET_ERRNO | 1
