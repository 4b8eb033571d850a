"""Kernel ABI struct layouts: the shim's cffi declarations against a model of each
supported arch (pointer size, 64-bit alignment, byte order). The host's cffi layout
and bytes are checked for real; the model is what makes the other arches checkable
here, and it is validated by agreeing with the host."""

import os
import struct
import subprocess
import sys

import pytest

from pyprocd.process import _shim_build, seccomp, shim, syscalls

# arch -> (pointer size, alignment of 64-bit ints inside structs, big endian)
ABI = {
    "x86_64": (8, 8, False), "i386": (4, 4, False), "arm": (4, 8, False),
    "armeb": (4, 8, True), "aarch64": (8, 8, False), "mips": (4, 8, True),
    "mipsel": (4, 8, False),
}
# struct -> [(field, kind)]; kinds: u8 u16 u32 i32 u64 ptr
STRUCTS = {
    "struct sock_filter": [("code", "u16"), ("jt", "u8"), ("jf", "u8"), ("k", "u32")],
    "struct sock_fprog": [("len", "u16"), ("filter", "ptr")],
    "struct user_cap_header": [("version", "u32"), ("pid", "i32")],
    "struct user_cap_data": [("effective", "u32"), ("permitted", "u32"), ("inheritable", "u32")],
    "struct rlimit64_k": [("rlim_cur", "u64"), ("rlim_max", "u64")],
}
# Sizes the kernel's UAPI gives (linux/filter.h, capability.h, resource.h), per pointer size.
KERNEL_SIZES = {
    "struct sock_filter": {4: 8, 8: 8}, "struct sock_fprog": {4: 8, 8: 16},
    "struct user_cap_header": {4: 8, 8: 8}, "struct user_cap_data": {4: 12, 8: 12},
    "struct rlimit64_k": {4: 16, 8: 16},
}


def model_layout(fields, arch):
    pointer, align64, _ = ABI[arch]
    sizes = {"u8": (1, 1), "u16": (2, 2), "u32": (4, 4), "i32": (4, 4),
             "u64": (8, align64), "ptr": (pointer, pointer)}
    offset, max_align, offsets = 0, 1, {}
    for name, kind in fields:
        size, align = sizes[kind]
        offset = (offset + align - 1) // align * align
        offsets[name] = offset
        offset += size
        max_align = max(max_align, align)
    return offsets, (offset + max_align - 1) // max_align * max_align


@pytest.mark.parametrize("arch", sorted(ABI))
@pytest.mark.parametrize("struct_name", sorted(STRUCTS))
def test_model_gives_the_kernel_sizes(arch, struct_name):
    _, size = model_layout(STRUCTS[struct_name], arch)
    assert size == KERNEL_SIZES[struct_name][ABI[arch][0]]


@pytest.mark.parametrize("struct_name", sorted(STRUCTS))
def test_host_cffi_layout_matches_the_model(struct_name):
    ffi, _ = shim.ffi_and_lib()
    offsets, size = model_layout(STRUCTS[struct_name], syscalls.host_arch())
    assert ffi.sizeof(struct_name) == size
    for field, offset in offsets.items():
        assert ffi.offsetof(struct_name, field) == offset, field


def model_filter_bytes(instructions, arch):
    order = ">" if ABI[arch][2] else "<"
    return b"".join(struct.pack(order + "HBBI", *insn) for insn in instructions)


@pytest.mark.parametrize("arch", sorted(ABI))
def test_filter_bytes_per_arch_decode_back(arch):
    """Each arch's memory image of a compiled filter decodes, in that arch's byte
    order, to the same instructions; big- and little-endian images differ."""
    policy = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                            "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]}
    program = seccomp.compile_policy(policy, arch)
    image = model_filter_bytes(program, arch)
    order = ">" if ABI[arch][2] else "<"
    assert list(struct.iter_unpack(order + "HBBI", image)) == program
    flipped = model_filter_bytes(program, "mips" if order == "<" else "mipsel")
    assert flipped != image


def test_host_filter_memory_is_the_model_image():
    arch = syscalls.host_arch()
    program = seccomp.compile_policy({"defaultAction": "SCMP_ACT_ALLOW"}, arch)
    built = shim.FilterProgram(program)
    ffi, _ = shim.ffi_and_lib()
    assert bytes(ffi.buffer(built.filters)) == model_filter_bytes(program, arch)
    assert built.fprog.len == len(program)
    assert built.fprog.filter == built.filters
    assert built.instructions() == program


def test_host_cap_data_words_are_little_halves():
    ffi, _ = shim.ffi_and_lib()
    data = ffi.new("struct user_cap_data[2]")
    data[0].effective, data[1].effective = 0x89ABCDEF, 0x1
    order = ">" if ABI[syscalls.host_arch()][2] else "<"
    raw = bytes(ffi.buffer(data))
    assert struct.unpack(order + "6I", raw)[0::3] == (0x89ABCDEF, 0x1)


def test_generated_module_is_in_sync_with_the_cdef(tmp_path):
    pytest.importorskip("pycparser")
    target = tmp_path / "_shim_ffi.py"
    _shim_build.make_ffi().emit_python_code(str(target))
    with open(_shim_build.target_path()) as f:
        assert target.read_text() == f.read(), "run python3 -m pyprocd.process._shim_build"


def test_out_of_line_and_inline_layouts_agree():
    pytest.importorskip("pycparser")
    inline = _shim_build.make_ffi()
    ffi, _ = shim.ffi_and_lib()
    for name, fields in STRUCTS.items():
        assert inline.sizeof(name) == ffi.sizeof(name)
        for field, _kind in fields:
            assert inline.offsetof(name, field) == ffi.offsetof(name, field)


def test_shim_does_not_need_pycparser():
    """At run time only _cffi_backend is imported: no pycparser, no cffi front end."""
    code = ("import sys; from pyprocd.process import shim; shim.capget(); "
            "print(sorted(m for m in sys.modules if 'cffi' in m or 'pycparser' in m), "
            "'pyprocd.process._shim_ffi' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120, check=True).stdout
    assert out.strip() == "['_cffi_backend'] True"
