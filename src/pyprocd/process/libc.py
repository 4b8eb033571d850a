"""libc through cffi in ABI mode: the one loaded FFI, its error check, and prctl(2).

All the daemon itself calls at start is prctl(PR_SET_CHILD_SUBREAPER); the
hardening calls (capabilities, limits, seccomp, ptrace) are in shim, which
builds on this module and is imported only once an instance needs them, so
the daemon does not carry their code for its life. See shim for the ABI rules.
"""

import os

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h

_ffi = None
_lib = None


def ffi_and_lib():
    """(ffi, lib), loaded on first use."""
    global _ffi, _lib
    if _lib is None:
        from pyprocd.process._shim_ffi import ffi

        lib = ffi.dlopen(None)  # the libc already mapped into this process (glibc or musl)
        for name in ("prctl", "capget", "capset"):
            getattr(lib, name)  # resolve now (dlsym), not in every forked child
        _ffi, _lib = ffi, lib
    return _ffi, _lib


def loaded():
    """True once cffi has been imported for libc calls (for memory accounting and tests)."""
    return _lib is not None


def check(result, what):
    if result == -1:
        err = _ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    """prctl(2) with unsigned long arguments (prctl is variadic in libc: typed casts)."""
    ffi, lib = ffi_and_lib()
    args = [a if isinstance(a, ffi.CData) else ffi.cast("unsigned long", a)
            for a in (arg2, arg3, arg4, arg5)]
    return check(lib.prctl(ffi.cast("int", option), *args), f"prctl({option})")


def set_child_subreaper(on=True):
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)
