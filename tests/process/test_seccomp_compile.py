"""The policy compiler, checked by running its BPF in the reference interpreter on
every supported arch (both byte orders), and its refusals."""

import json

import pytest

from pyprocd.process import harden, syscalls
from pyprocd.process.seccomp import (
    RET_ALLOW,
    RET_ERRNO,
    RET_KILL_PROCESS,
    RET_KILL_THREAD,
    RET_LOG,
    RET_TRAP,
    PolicyError,
    compile_policy,
    evaluate,
)

ALL_ARCHES = sorted(syscalls.ARCHES)


def run(policy, arch, name, args=()):
    info = syscalls.ARCHES[arch]
    program = compile_policy(policy, arch)
    nr = syscalls.numbers(arch)[name]
    return evaluate(program, nr, info.audit_arch, args, info.big_endian)


def allow_with(*rules, default="SCMP_ACT_ALLOW"):
    return {"defaultAction": default, "syscalls": list(rules)}


@pytest.mark.parametrize("arch", ALL_ARCHES)
def test_whitelist_as_utrace_writes_it(arch):
    policy = {"defaultAction": "SCMP_ACT_KILL_PROCESS",
              "syscalls": [{"names": ["read", "write", "execve", "exit_group"],
                            "action": "SCMP_ACT_ALLOW"}]}
    assert run(policy, arch, "read") == RET_ALLOW
    assert run(policy, arch, "execve") == RET_ALLOW
    assert run(policy, arch, "getpid") == RET_KILL_PROCESS
    assert run(policy, arch, "kill") == RET_KILL_PROCESS


@pytest.mark.parametrize("arch", ALL_ARCHES)
def test_actions_and_errno(arch):
    policy = allow_with(
        {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["getpid"], "action": "SCMP_ACT_KILL"},
        {"names": ["getppid"], "action": "SCMP_ACT_TRAP"},
        {"names": ["getuid" if arch != "arm" else "getuid32"], "action": "SCMP_ACT_LOG"},
    )
    assert run(policy, arch, "chdir") == RET_ERRNO | 1          # EPERM by default
    assert run(policy, arch, "mkdirat") == RET_ERRNO | 13
    assert run(policy, arch, "getpid") == RET_KILL_THREAD
    assert run(policy, arch, "getppid") == RET_TRAP
    assert run(policy, arch, "getuid" if arch != "arm" else "getuid32") == RET_LOG
    assert run(policy, arch, "read") == RET_ALLOW


def test_first_matching_rule_wins():
    policy = allow_with({"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
                        {"names": ["chdir"], "action": "SCMP_ACT_KILL_PROCESS"})
    assert run(policy, "x86_64", "chdir") == RET_ERRNO | 2


@pytest.mark.parametrize("arch", ALL_ARCHES)
def test_foreign_audit_arch_is_killed(arch):
    program = compile_policy(allow_with(), arch)
    info = syscalls.ARCHES[arch]
    for other in syscalls.ARCHES.values():
        if other.audit_arch != info.audit_arch:
            assert evaluate(program, 0, other.audit_arch, (), info.big_endian) == RET_KILL_PROCESS


def test_x32_numbers_are_refused_on_x86_64():
    program = compile_policy(allow_with(), "x86_64")
    audit = syscalls.ARCHES["x86_64"].audit_arch
    assert evaluate(program, 0x40000000 | 59, audit) == RET_KILL_PROCESS
    assert evaluate(program, 59, audit) == RET_ALLOW


def _kill_rule(op, value, two=None):
    arg = {"index": 1, "value": value, "op": op}
    if two is not None:
        arg["valueTwo"] = two
    return allow_with({"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                       "args": [arg]})


BIG = 0x1_0000_0005  # needs the high word: a low-word-only compare gets these wrong
CASES = [
    ("SCMP_CMP_EQ", 9, None, {9: True, 8: False, 9 | 1 << 32: False}),
    ("SCMP_CMP_NE", 9, None, {9: False, 8: True, 9 | 1 << 32: True}),
    ("SCMP_CMP_GT", BIG, None, {BIG + 1: True, BIG: False, 6: False, 2 << 32: True}),
    ("SCMP_CMP_GE", BIG, None, {BIG: True, BIG - 1: False, 6: False, 2 << 32: True}),
    ("SCMP_CMP_LT", BIG, None, {BIG - 1: True, BIG: False, 6: True, 2 << 32: False}),
    ("SCMP_CMP_LE", BIG, None, {BIG: True, BIG + 1: False, 6: True, 2 << 32: False}),
    ("SCMP_CMP_MASKED_EQ", 0xFF | 0xF << 32, 0x12 | 0x3 << 32,
     {0x12 | 0x3 << 32: True, 0x3412 | 0x13 << 32: True, 0x12: False, 0x13 | 0x3 << 32: False}),
]


@pytest.mark.parametrize("arch", ALL_ARCHES)
@pytest.mark.parametrize("op,value,two,expect", CASES, ids=[c[0] for c in CASES])
def test_argument_conditions_compare_64_bits(arch, op, value, two, expect):
    policy = _kill_rule(op, value, two)
    for arg, denied in expect.items():
        got = run(policy, arch, "kill", (123, arg))
        assert got == (RET_ERRNO | 13 if denied else RET_ALLOW), (op, hex(arg))


@pytest.mark.parametrize("arch", ["x86_64", "mips", "mipsel", "armeb"])
def test_several_conditions_all_must_hold(arch):
    policy = allow_with({"names": ["kill", "tkill"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]})
    assert run(policy, arch, "kill", (1, 15)) == RET_ERRNO | 1
    assert run(policy, arch, "tkill", (1, 15)) == RET_ERRNO | 1
    assert run(policy, arch, "kill", (1, 9)) == RET_ALLOW
    assert run(policy, arch, "kill", (2, 15)) == RET_ALLOW
    assert run(policy, arch, "getpid") == RET_ALLOW


@pytest.mark.parametrize("policy,reason", [
    (allow_with({"names": ["no_such_call"], "action": "SCMP_ACT_ALLOW"}), "unknown on"),
    (allow_with({"names": ["read"], "action": "SCMP_ACT_NOTIFY"}), "unsupported action"),
    (allow_with({"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}), "errnoRet"),
    (allow_with({"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99999}), "range"),
    (allow_with({"names": [], "action": "SCMP_ACT_ALLOW"}), "names"),
    (allow_with({"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}), "index"),
    (allow_with({"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}), "op"),
    (allow_with({"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}), "64-bit"),
    ({"syscalls": []}, "unsupported action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}, "flags"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}, "not x86_64"),
    # (a policy that does not list execve gets it from the loader allowance, see
    # tests/trace/test_loader_allowance.py; one that names it for a kill is refused)
    ({"defaultAction": "SCMP_ACT_KILL_PROCESS",
      "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_KILL_PROCESS"}]}, "execve"),
    (allow_with({"names": ["execve"], "action": "SCMP_ACT_ERRNO"}), "execve"),
])
def test_policies_that_cannot_be_honoured_are_refused(policy, reason):
    with pytest.raises(PolicyError, match=reason):
        compile_policy(policy, "x86_64")


def test_a_name_is_checked_against_the_target_arch():
    policy = allow_with({"names": ["arch_prctl"], "action": "SCMP_ACT_ERRNO"})
    compile_policy(policy, "x86_64")
    with pytest.raises(PolicyError, match="unknown on aarch64"):
        compile_policy(policy, "aarch64")


def test_matching_architectures_list_is_accepted():
    policy = {"defaultAction": "SCMP_ACT_ALLOW",
              "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]}
    assert run(policy, "x86_64", "read") == RET_ALLOW


def test_prepare_reads_files_and_reports_reasons(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(allow_with({"names": ["chdir"], "action": "SCMP_ACT_ERRNO"})))
    plan = harden.prepare(False, None, str(good), arch="mips")
    assert plan.no_new_privs  # a filter always comes with no_new_privs
    assert plan.arch == "mips" and len(plan.program) > 5

    oci = tmp_path / "config.json"
    oci.write_text(json.dumps({"linux": {"seccomp": allow_with()}}))
    assert harden.prepare(False, None, str(oci)) is not None

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(allow_with({"names": ["frobnicate"], "action": "SCMP_ACT_ERRNO"})))
    with pytest.raises(harden.HardenError, match="frobnicate"):
        harden.prepare(False, None, str(bad))
    with pytest.raises(harden.HardenError, match="cannot read"):
        harden.prepare(False, None, str(tmp_path / "missing.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(harden.HardenError, match="not valid JSON"):
        harden.prepare(False, None, str(tmp_path / "broken.json"))
    assert isinstance(harden.HardenError("x"), ValueError)


def test_nothing_requested_means_no_plan():
    assert harden.prepare(False, None, None) is None
