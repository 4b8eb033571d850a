"""Regenerate _shim_ffi.py, the out-of-line ABI-mode cffi module (developer tool).

Out-of-line ABI mode: cffi parses CDEF once, here, and writes a pure-Python module
holding a compact, platform-independent type table. At run time only the small
`_cffi_backend` extension is imported (no pycparser, no compiler), and struct layouts
are computed by cffi for the host's own ABI (pointer size, alignment, byte order).

    python3 -m pyprocd.process._shim_build
"""

import os
import sys

MODULE = "pyprocd.process._shim_ffi"

# Only fixed-width kernel ABI structs; no host assumptions are written down here.
CDEF = """
struct sock_filter { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; };
struct sock_fprog { unsigned short len; struct sock_filter *filter; };
struct user_cap_header { uint32_t version; int pid; };
struct user_cap_data { uint32_t effective; uint32_t permitted; uint32_t inheritable; };
struct rlimit64_k { uint64_t rlim_cur; uint64_t rlim_max; };

int prctl(int option, ...);
long syscall(long number, ...);
int capget(struct user_cap_header *hdr, struct user_cap_data *data);
int capset(struct user_cap_header *hdr, struct user_cap_data *data);
int prlimit64(int pid, int resource, struct rlimit64_k *new_limit, struct rlimit64_k *old_limit);
int prlimit(int pid, int resource, struct rlimit64_k *new_limit, struct rlimit64_k *old_limit);

/* The tracer (pyprocd trace). linux/ptrace.h's struct ptrace_syscall_info with its
   union flattened: entry and seccomp stops share this layout (nr, args, ret_data);
   an exit stop's rval sits where nr is. Offsets 0/4/8/16/24/32 on every ABI; the
   tail padding (84 or 88 bytes) is the host's. */
struct ptrace_syscall_info {
    uint8_t op; uint8_t reserved; uint16_t flags; uint32_t arch;
    uint64_t instruction_pointer; uint64_t stack_pointer;
    uint64_t nr; uint64_t args[6]; uint32_t ret_data;
};
long ptrace(int request, ...);
int waitpid(int pid, int *status, int options);

/* The built-in jail: namespaces, mounts, hostname (pivot_root goes through syscall). */
int unshare(int flags);
int setns(int fd, int nstype);
int mount(const char *source, const char *target, const char *filesystemtype,
          unsigned long mountflags, const void *data);
int umount2(const char *target, int flags);
int sethostname(const char *name, size_t len);

/* The zygote forks without CPython's at-fork work (see process/zygote.py). */
int fork(void);
"""


def make_ffi():
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(MODULE, None)
    return ffi


def target_path():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_shim_ffi.py")


def main(argv=None):
    path = (argv or [None])[0] or target_path()
    make_ffi().emit_python_code(path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
