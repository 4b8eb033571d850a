"""The shim's ptrace declarations: struct ptrace_syscall_info laid out as the kernel
reads it on every supported arch (the model of tests/process/test_layout.py), and
the calls working on a real tracee."""

import os
import signal

import pytest

from pyprocd.process import shim, syscalls
from tests.process.test_layout import ABI, model_layout

FIELDS = ([("op", "u8"), ("reserved", "u8"), ("flags", "u16"), ("arch", "u32"),
           ("instruction_pointer", "u64"), ("stack_pointer", "u64"), ("nr", "u64")]
          + [(f"args{i}", "u64") for i in range(6)] + [("ret_data", "u32")])
# linux/ptrace.h: the same offsets on every ABI; 84 bytes where u64 is 4-aligned (i386)
KERNEL_OFFSETS = {"op": 0, "arch": 4, "instruction_pointer": 8, "stack_pointer": 16,
                  "nr": 24, "args0": 32, "ret_data": 80}


@pytest.mark.parametrize("arch", sorted(ABI))
def test_model_gives_the_kernel_layout_on_every_arch(arch):
    offsets, size = model_layout(FIELDS, arch)
    assert {k: offsets[k] for k in KERNEL_OFFSETS} == KERNEL_OFFSETS
    assert size == (84 if ABI[arch][1] == 4 else 88)


def test_host_cffi_layout_matches_the_model():
    ffi, _ = shim.ffi_and_lib()
    offsets, size = model_layout(FIELDS, syscalls.host_arch())
    assert ffi.sizeof("struct ptrace_syscall_info") == size
    for name in ("op", "arch", "instruction_pointer", "stack_pointer", "nr", "ret_data"):
        assert ffi.offsetof("struct ptrace_syscall_info", name) == offsets[name]
    assert ffi.offsetof("struct ptrace_syscall_info", "args") == offsets["args0"]


def test_seize_and_read_a_syscall_entry_of_a_real_child():
    """A child stopped at a syscall entry reports this ABI's audit arch and the number."""
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGSTOP)
        os.getppid()
        os._exit(0)
    try:
        _, status = os.waitpid(pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        shim.ptrace(shim.PTRACE_SEIZE, pid, 0,
                    shim.PTRACE_O_TRACESYSGOOD | shim.PTRACE_O_EXITKILL)
        os.kill(pid, signal.SIGCONT)
        info, arch = shim.SyscallInfo(), syscalls.ARCHES[syscalls.host_arch()]
        seen = []
        while True:
            _, status = shim.waitpid(pid, shim.WALL)
            if not os.WIFSTOPPED(status):
                break
            if os.WSTOPSIG(status) == signal.SIGTRAP | 0x80:
                op, audit, nr = info.read(pid)
                if op == shim.PTRACE_SYSCALL_INFO_ENTRY:
                    assert audit == arch.audit_arch
                    seen.append(nr)
            shim.ptrace(shim.PTRACE_SYSCALL, pid)
        assert syscalls.numbers(arch.name)["getppid"] in seen
        assert os.WIFEXITED(status)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_ptrace_errors_raise_oserror_with_errno():
    with pytest.raises(ProcessLookupError):
        shim.ptrace(shim.PTRACE_SYSCALL, 0x7FFFFFF0)
