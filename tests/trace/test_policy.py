"""Counts -> names in utrace's order, per the tracee's ABI; numbers without a name."""

from pyprocd.process import syscalls
from pyprocd.trace import policy

X86_64 = syscalls.ARCHES["x86_64"].audit_arch
MIPSEL = syscalls.ARCHES["mipsel"].audit_arch


def test_count_descending_ties_by_number_forced_names_count_one():
    counts = {(X86_64, 0): 5, (X86_64, 1): 9, (X86_64, 3): 5, (X86_64, 231): 40,
              (X86_64, 13): 7}
    names, unnamed = policy.named_counts(counts)
    assert unnamed == []
    # exit_group (231) and rt_sigaction (13) are forced to 1, as utrace does
    assert [n for n, _ in names] == ["write", "read", "close", "rt_sigaction",
                                     "rt_sigreturn", "exit", "exit_group"]


def test_names_come_from_the_tracees_abi_not_the_tracers():
    mips = syscalls.numbers("mipsel")
    names, _ = policy.named_counts({(MIPSEL, mips["fcntl64"]): 3, (MIPSEL, mips["uname"]): 1})
    assert names[0] == ("fcntl64", 3)
    assert "uname" in dict(names) and "sigreturn" in dict(names)   # o32 has sigreturn


def test_a_number_without_a_name_is_reported_not_dropped():
    names, unnamed = policy.named_counts({(X86_64, 4000): 2, (0x12345678, 7): 1})
    assert "exit_group" in dict(names)
    assert sorted(str(u) for u in unnamed) == [
        "syscall 4000 on x86_64 has no name: called 2 time(s)",
        "syscall 7 on unknown ABI (audit arch 0x12345678) has no name: called 1 time(s)"]


def test_default_path_is_utraces():
    assert policy.default_path("/tmp", "/usr/sbin/umdns", 1234) == "/tmp/umdns.1234.json"
