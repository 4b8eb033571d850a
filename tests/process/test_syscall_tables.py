"""Syscall tables (generated data) against the kernel's numbers, and arch facts."""

import os
import re
import shutil

import pytest

from pyprocd.process import caps, syscalls
from pyprocd.process.syscalls import _generate

ALL_TABLES = ["x86_64", "i386", "arm", "aarch64", "mips"]

# Spot checks from the kernel's own tables (arch/*/syscall*.tbl, asm-generic/unistd.h).
KNOWN = {
    "x86_64": {"read": 0, "execve": 59, "arch_prctl": 158, "prctl": 157, "seccomp": 317,
               "prlimit64": 302, "pidfd_open": 434, "clone3": 435, "open_tree_attr": 467},
    "i386": {"exit": 1, "execve": 11, "socketcall": 102, "prctl": 172, "seccomp": 354,
             "prlimit64": 340, "clone3": 435},
    "arm": {"restart_syscall": 0, "execve": 11, "prctl": 172, "capget": 184, "vfork": 190,
            "ugetrlimit": 191, "prlimit64": 369, "setns": 375, "seccomp": 383,
            "kexec_file_load": 401, "pidfd_open": 434, "cacheflush": 0x0F0002,
            "set_tls": 0x0F0005},
    "aarch64": {"openat": 56, "read": 63, "prlimit64": 261, "prctl": 167, "execve": 221,
                "seccomp": 277, "clone3": 435},
    "mips": {"syscall": 4000, "read": 4003, "execve": 4011, "cacheflush": 4147,
             "prctl": 4192, "prlimit64": 4338, "seccomp": 4352, "futex_time64": 4422,
             "pidfd_open": 4434, "clone3": 4435, "setxattrat": 4463, "open_tree_attr": 4467},
}
ABSENT = {
    "arm": ["time", "socketcall", "arch_prctl"],     # oabi-only / other arches
    "aarch64": ["open", "fork", "stat", "socketcall"],
    "x86_64": ["socketcall", "cacheflush", "_llseek"],
    "mips": ["arch_prctl", "set_tls"],
}
UNIFIED = ["pidfd_send_signal", "pidfd_open", "clone3", "close_range", "openat2",
           "faccessat2", "process_madvise", "epoll_pwait2", "futex_waitv", "cachestat", "mseal"]


@pytest.mark.parametrize("arch", ALL_TABLES)
def test_known_numbers(arch):
    table = syscalls.numbers(arch)
    for name, nr in KNOWN[arch].items():
        assert table[name] == nr, name
    for name in ABSENT.get(arch, []):
        assert name not in table, name


@pytest.mark.parametrize("arch", ALL_TABLES)
def test_table_is_sane(arch):
    table = syscalls.numbers(arch)
    assert len(table) > 300
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", name) for name in table)
    aliases = {"sync_file_range2"}  # arm: the header's second name for arm_sync_file_range
    numbers = [nr for name, nr in table.items() if name not in aliases]
    assert len(set(numbers)) == len(numbers), "two names share a number"
    for name in ("execve", "exit_group", "rt_sigreturn", "read", "write", "close", "mmap2"
                 if syscalls.ARCHES[arch].big_endian or arch in ("arm", "i386") else "mmap"):
        assert name in table, name


def test_unified_numbers_agree_across_arches():
    base = {"mips": 4000}
    for name in UNIFIED:
        values = {arch: syscalls.numbers(arch)[name] - base.get(arch, 0) for arch in ALL_TABLES}
        assert len(set(values.values())) == 1, (name, values)


def test_both_byte_orders_share_a_table():
    assert syscalls.numbers("mips") is syscalls.numbers("mipsel")
    assert syscalls.numbers("arm") is syscalls.numbers("armeb")


HEADER_ARCHES = {"x86_64": "x86_64", "i386": "i386", "arm": "arm", "aarch64": "aarch64",
                 "mips_o32": "mips"}


@pytest.mark.parametrize("table_name", sorted(HEADER_ARCHES))
def test_tables_match_the_kernel_headers(table_name):
    """Regenerate from the UAPI headers when they are installed (x86 ones come with
    linux-libc-dev; arm/arm64/mips with linux-libc-dev-*-cross)."""
    includes = _generate.SOURCES[table_name][0]
    if not shutil.which("cpp") or not all(os.path.isdir(d) for d in includes):
        pytest.skip(f"no cpp or no UAPI headers for {table_name} ({includes[-1]})")
    from_headers = _generate.numbers_from_headers(table_name)
    table = syscalls.numbers(HEADER_ARCHES[table_name])
    assert {n: v for n, v in table.items() if n in from_headers} == from_headers
    assert set(table) - set(from_headers) <= set(_generate.NEWER_UNIFIED)


def _defines(path):
    with open(path) as f:
        return dict(re.findall(r"^#define\s+(\w+)\s+(.+?)\s*(?:/\*.*)?$", f.read(), re.MULTILINE))


def test_audit_arch_values_match_linux_audit_h():
    audit_h, elf_h = "/usr/include/linux/audit.h", "/usr/include/linux/elf-em.h"
    if not (os.path.exists(audit_h) and os.path.exists(elf_h)):
        pytest.skip("no linux/audit.h here")
    names = {**_defines(elf_h), **_defines(audit_h)}

    def value(token):
        token = token.strip().strip("()")
        if "|" in token:
            out = 0
            for part in token.split("|"):
                out |= value(part)
            return out
        return int(token, 0) if token[0].isdigit() else value(names[token])

    expected = {"x86_64": "AUDIT_ARCH_X86_64", "i386": "AUDIT_ARCH_I386",
                "arm": "AUDIT_ARCH_ARM", "armeb": "AUDIT_ARCH_ARMEB",
                "aarch64": "AUDIT_ARCH_AARCH64", "mips": "AUDIT_ARCH_MIPS",
                "mipsel": "AUDIT_ARCH_MIPSEL"}
    for arch, macro in expected.items():
        assert syscalls.ARCHES[arch].audit_arch == value(names[macro]), arch


def test_capability_numbers_match_linux_capability_h():
    path = "/usr/include/linux/capability.h"
    if not os.path.exists(path):
        pytest.skip("no linux/capability.h here")
    found = {k: int(v) for k, v in _defines(path).items()
             if k.startswith("CAP_") and v.isdigit() and k != "CAP_LAST_CAP"}
    for name, number in caps.NUMBERS.items():
        assert found[name] == number, name


@pytest.mark.parametrize("machine,pointer,order,multiarch,arch", [
    ("x86_64", 8, "little", "x86_64-linux-gnu", "x86_64"),
    ("x86_64", 4, "little", "i386-linux-gnu", "i386"),
    ("i686", 4, "little", "", "i386"),
    ("armv7l", 4, "little", "arm-linux-gnueabihf", "arm"),
    ("armv5tel", 4, "little", "", "arm"),
    ("armv7b", 4, "big", "", "armeb"),
    ("aarch64", 8, "little", "aarch64-linux-gnu", "aarch64"),
    ("aarch64", 4, "little", "arm-linux-gnueabihf", "arm"),
    ("mips", 4, "big", "", "mips"),
    ("mips", 4, "little", "", "mipsel"),
    ("mips64", 4, "big", "mips-linux-gnu", "mips"),
])
def test_host_arch_follows_the_process_abi(machine, pointer, order, multiarch, arch):
    assert syscalls.host_arch(machine, pointer, order, multiarch) == arch


@pytest.mark.parametrize("machine,pointer,multiarch", [
    ("x86_64", 4, "x86_64-linux-gnux32"), ("mips64", 8, ""), ("mips64", 4, "mips64-linux-gnuabin32"),
    ("riscv64", 8, ""), ("ppc", 4, ""),
])
def test_host_arch_refuses_abis_without_a_table(machine, pointer, multiarch):
    with pytest.raises(ValueError):
        syscalls.host_arch(machine, pointer, "little", multiarch)


def test_this_host_is_supported():
    assert syscalls.host_arch() in syscalls.ARCHES
