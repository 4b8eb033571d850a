"""Compile a seccomp policy (OCI `linux.seccomp` JSON, as procd's utrace writes and
ujail reads it) into a classic-BPF program for one architecture.

    {"defaultAction": "SCMP_ACT_KILL_PROCESS",
     "architectures": ["SCMP_ARCH_X86_64"],                       (optional)
     "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                  {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                   "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]}

Rules are checked in file order; the first whose syscall and argument conditions match
decides; otherwise defaultAction. The program first checks the audit arch (a foreign
ABI is killed) and, on x86_64, refuses x32 syscall numbers, which share the x86_64
audit arch. Argument conditions compare the full 64-bit value (both halves of the
seccomp_data word, at the offsets this arch's byte order puts them).

Anything that cannot be honoured exactly raises PolicyError: an unknown action, op,
flag or architecture, a syscall name no supported arch knows (a typo: ujail would skip
it silently), a policy under which execve itself is denied (the service could never
start). In a rule that allows, a name that only other arches have (`fcntl64` on
x86_64: OpenWrt's packaged policies list the union over arches) is skipped, as ujail
does: that only makes the filter stricter. In a rule that denies it stays an error: the
author meant to stop something, and on this arch that call goes by another name.
Pure Python; produces (code, jt, jf, k) tuples.

The loader allowance
--------------------
procd applies a policy at `main` (a preload library), so policies written for OpenWrt
(utrace's output, the files packages ship in /etc/seccomp) never list what `execve`
and the dynamic loader do before `main`. pyprocd loads the filter before `execve`:
those syscalls are allowed too, but only these (LOADER_SYSCALLS resolved per arch, and
LOADER_CONDITIONS) and only those the policy does not mention itself: a name the
policy lists, with any action or argument condition, is decided by the policy alone.
See loader_allowance() and loader_conditions().
"""

import json

from pyprocd.process import syscalls
from pyprocd.process.files import UnsafePath, read_regular

# linux/seccomp.h return values
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
EPERM = 1

ACTIONS = {
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ERRNO": RET_ERRNO,
    "SCMP_ACT_ERROR": RET_ERRNO,  # procd's alias
    "SCMP_ACT_TRACE": RET_TRACE,
    "SCMP_ACT_LOG": RET_LOG,
    "SCMP_ACT_ALLOW": RET_ALLOW,
}

# classic BPF opcodes (linux/bpf_common.h)
LD_W_ABS = 0x20          # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15             # BPF_JMP | BPF_JEQ | BPF_K
JGT_K = 0x25
JGE_K = 0x35
AND_K = 0x54             # BPF_ALU | BPF_AND | BPF_K
RET_K = 0x06             # BPF_RET | BPF_K

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARGS = 16
X32_SYSCALL_BIT = 0x40000000
OPS = ("SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT",
       "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ")


class PolicyError(ValueError):
    """The seccomp policy cannot be honoured; the message says why."""


def load(path):
    """The policy dict from a file (a bare linux.seccomp object or a whole OCI config)."""
    try:
        document = json.loads(read_regular(path))
    except UnsafePath as e:
        raise PolicyError(f"seccomp: cannot read {e}") from None
    except OSError as e:
        raise PolicyError(f"seccomp: cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise PolicyError(f"seccomp: {path} is not valid JSON: {e}") from None
    if isinstance(document, dict) and isinstance(document.get("linux"), dict):
        document = document["linux"].get("seccomp")
    if not isinstance(document, dict):
        raise PolicyError(f"seccomp: {path} holds no seccomp policy object")
    return document


# --- a tiny assembler: instructions with symbolic forward jumps ------------------------

class _Program:
    def __init__(self):
        self.code = []      # [code, jt, jf, k]; jt/jf are label names or ints
        self.labels = {}
        self._next_label = 0

    def label(self):
        self._next_label += 1
        return f"L{self._next_label}"

    def place(self, name):
        self.labels[name] = len(self.code)

    def emit(self, code, k=0, jt=0, jf=0):
        self.code.append([code, jt, jf, k & 0xFFFFFFFF])

    def assemble(self):
        out = []
        for index, (code, jt, jf, k) in enumerate(self.code):
            out.append((code, self._offset(index, jt), self._offset(index, jf), k))
        return out

    def _offset(self, index, target):
        if isinstance(target, int):
            return target
        distance = self.labels[target] - index - 1
        if not 0 <= distance <= 255:
            raise PolicyError(f"seccomp: rule too large to encode (jump of {distance})")
        return distance


# --- policy -> program -------------------------------------------------------------

def _action(name, errno_ret, where):
    if not isinstance(name, str) or name not in ACTIONS:
        raise PolicyError(f"seccomp: unsupported action {name!r} in {where}")
    value = ACTIONS[name]
    if errno_ret is not None:
        if value != RET_ERRNO:
            raise PolicyError(f"seccomp: errnoRet given with {name} in {where}")
        if not isinstance(errno_ret, int) or not 0 <= errno_ret <= 4095:
            raise PolicyError(f"seccomp: errnoRet {errno_ret!r} out of range in {where}")
        return value | errno_ret
    return value | EPERM if value == RET_ERRNO else value


def _arg_offsets(index, big_endian):
    base = OFFSET_ARGS + 8 * index
    return (base, base + 4) if big_endian else (base + 4, base)   # (high, low)


def _check_arg(arg, where):
    if not isinstance(arg, dict):
        raise PolicyError(f"seccomp: argument condition must be an object in {where}")
    index, op, value = arg.get("index"), arg.get("op"), arg.get("value")
    if not isinstance(index, int) or not 0 <= index <= 5:
        raise PolicyError(f"seccomp: argument index {index!r} not in 0..5 in {where}")
    if op not in OPS:
        raise PolicyError(f"seccomp: unsupported op {op!r} in {where}")
    two = arg.get("valueTwo", 0)
    for v in (value, two):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 64:
            raise PolicyError(f"seccomp: argument value {v!r} is not a 64-bit unsigned in {where}")
    return index, op, value, two


def _emit_condition(prog, arg, fail, big_endian):
    """Fall through when the condition holds, jump to `fail` otherwise."""
    index, op, value, two = arg
    hi_off, lo_off = _arg_offsets(index, big_endian)
    if op == "SCMP_CMP_MASKED_EQ":
        mask, want = value, two
        prog.emit(LD_W_ABS, hi_off)
        prog.emit(AND_K, mask >> 32)
        prog.emit(JEQ_K, (want & mask) >> 32, jf=fail)
        prog.emit(LD_W_ABS, lo_off)
        prog.emit(AND_K, mask)
        prog.emit(JEQ_K, want & mask, jf=fail)
        return
    hi, lo = value >> 32, value & 0xFFFFFFFF
    ok = prog.label()
    prog.emit(LD_W_ABS, hi_off)
    if op == "SCMP_CMP_EQ":
        prog.emit(JEQ_K, hi, jf=fail)
        prog.emit(LD_W_ABS, lo_off)
        prog.emit(JEQ_K, lo, jf=fail)
    elif op == "SCMP_CMP_NE":
        prog.emit(JEQ_K, hi, jf=ok)
        prog.emit(LD_W_ABS, lo_off)
        prog.emit(JEQ_K, lo, jt=fail)
    else:
        # Unsigned 64-bit order: the high words decide unless equal, then the low words.
        greater_is_true = op in ("SCMP_CMP_GT", "SCMP_CMP_GE")
        prog.emit(JGT_K, hi, jt=ok if greater_is_true else fail)
        prog.emit(JEQ_K, hi, jf=fail if greater_is_true else ok)
        prog.emit(LD_W_ABS, lo_off)
        low_jump = JGE_K if op in ("SCMP_CMP_GE", "SCMP_CMP_LT") else JGT_K
        if greater_is_true:
            prog.emit(low_jump, lo, jf=fail)
        else:
            prog.emit(low_jump, lo, jt=fail)
    prog.place(ok)


def _resolve_names(names, table, arch, where, allows):
    if not isinstance(names, list) or not names:
        raise PolicyError(f"seccomp: {where} needs a non-empty names list")
    numbers = []
    for name in names:
        if isinstance(name, str) and name in table:
            numbers.append(table[name])
        elif not (allows and isinstance(name, str) and _known_elsewhere(name)):
            raise PolicyError(f"seccomp: syscall {name!r} is unknown on {arch}")
    return numbers


def _known_elsewhere(name):
    """A real syscall of another arch (it cannot be called on this one)."""
    return any(name in syscalls.numbers(arch) for arch in syscalls.ARCHES)


# What runs before `main` and so is missing from procd-era policies: traced with
# `pyprocd trace` from the execve of trivial programs (int main(void){return 0;}, with
# and without a second shared library, dynamic and static) on x86_64; for glibc also
# Debian 12's busybox under qemu-user -strace on mipsel, armhf and arm64 (its start-up
# up to main: the loader's calls under each ABI's own names).
LOADER_SYSCALLS = {
    # glibc 2.36 (Debian 12): ld.so maps the libraries, libc sets up TLS, the robust
    # futex list, rseq and the stack limit (prlimit64; getrlimit on mips o32,
    # ugetrlimit on arm), seeds malloc (getrandom); static binaries read
    # /proc/self/exe. 32-bit ABIs: mmap2, statx or fstat64/fstatat64 (time64 stat),
    # i386/mips TLS by set_thread_area, arm by set_tls; aarch64 has faccessat and
    # newfstatat. On mips the loader also checks the FPU mode: LOADER_CONDITIONS.
    "glibc": ("execve", "brk", "mmap", "mmap2", "munmap", "mprotect", "openat", "read",
              "pread64", "close", "fstat", "newfstatat", "fstat64", "fstatat64", "statx",
              "access", "faccessat", "faccessat2", "arch_prctl", "set_thread_area",
              "set_tls", "set_tid_address", "set_robust_list", "rseq", "prlimit64",
              "getrlimit", "ugetrlimit", "readlink", "readlinkat", "getrandom"),
    # musl 1.2.3 (as OpenWrt): its loader opens libraries with open (openat where there
    # is no open) and sets FD_CLOEXEC with fcntl, checks them with fstat (statx or
    # fstatat64 first on 32-bit time64 ABIs), maps them, sets the thread pointer.
    "musl": ("execve", "brk", "mmap", "mmap2", "munmap", "mprotect", "open", "openat",
             "read", "close", "fstat", "fstat64", "fstatat64", "newfstatat", "statx",
             "fcntl", "fcntl64", "arch_prctl", "set_thread_area", "set_tls",
             "set_tid_address"),
}


PR_SET_FP_MODE = 45
PR_GET_FP_MODE = 46
# Calls of the loader allowed only with these argument values:
# (arches, name, argument index, values). glibc's MIPS loader reads (and for objects
# built for another FPU ABI sets) the FPU mode with prctl; any other prctl is the
# policy's business.
LOADER_CONDITIONS = (
    (("mips", "mipsel"), "prctl", 0, (PR_SET_FP_MODE, PR_GET_FP_MODE)),
)


def _listed_names(policy):
    listed = set()
    for entry in policy.get("syscalls") or []:
        if isinstance(entry, dict) and isinstance(entry.get("names"), list):
            listed.update(name for name in entry["names"] if isinstance(name, str))
    return listed


def loader_conditions(policy, arch):
    """[(name, argument index, values)] allowed on `arch` on top of `policy`, for
    names the policy does not mention."""
    listed = _listed_names(policy)
    return [(name, index, values) for arches, name, index, values in LOADER_CONDITIONS
            if arch in arches and name not in listed]


def loader_allowance(policy, arch):
    """Names allowed on `arch` on top of `policy` (sorted): LOADER_SYSCALLS of both C
    libraries (which libc a service binary uses is not known when its policy is
    compiled), those this arch has, less every name the policy mentions."""
    table = syscalls.numbers(arch)
    listed = _listed_names(policy)
    wanted = set(LOADER_SYSCALLS["glibc"]) | set(LOADER_SYSCALLS["musl"])
    return sorted(name for name in wanted if name in table and name not in listed)


def _rules(policy, table, arch):
    """[(numbers, args, action)] in file order, validated."""
    entries = policy.get("syscalls", [])
    if not isinstance(entries, list):
        raise PolicyError("seccomp: syscalls must be a list")
    rules = []
    for position, entry in enumerate(entries):
        where = f"syscalls[{position}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"seccomp: {where} must be an object")
        action = _action(entry.get("action"), entry.get("errnoRet"), where)
        allows = action & 0xFFFF0000 in (RET_ALLOW, RET_LOG)
        numbers = _resolve_names(entry.get("names"), table, arch, where, allows)
        args = [_check_arg(a, where) for a in entry.get("args") or []]
        rules.append((numbers, args, action))
    return rules


def _check_header(policy, arch_info):
    if not isinstance(policy, dict):
        raise PolicyError("seccomp: policy must be a JSON object")
    flags = policy.get("flags")
    if flags:
        raise PolicyError(f"seccomp: filter flags {flags!r} are not supported")
    architectures = policy.get("architectures")
    if architectures and not set(architectures) & set(arch_info.scmp_names):
        raise PolicyError(f"seccomp: policy is for {', '.join(map(str, architectures))}, "
                          f"not {arch_info.name}")


def compile_policy(policy, arch=None, loader=True):
    """Classic-BPF instructions [(code, jt, jf, k)] for `policy` on `arch` (default: host).

    loader=False leaves out the loader allowance (for a policy known to be recorded
    from the execve on, and to show that such a policy needs none)."""
    arch = arch or syscalls.host_arch()
    if arch not in syscalls.ARCHES:
        raise PolicyError(f"seccomp: no syscall table for architecture {arch!r}")
    info = syscalls.ARCHES[arch]
    table = syscalls.numbers(arch)
    _check_header(policy, info)
    default = _action(policy.get("defaultAction"), policy.get("defaultErrnoRet"), "defaultAction")
    rules = _rules(policy, table, arch)
    if loader and default != RET_ALLOW:
        allowance = [table[name] for name in loader_allowance(policy, arch)]
        if allowance:
            rules.append((allowance, [], RET_ALLOW))
        for name, index, values in loader_conditions(policy, arch):
            for value in values:
                rules.append(([table[name]], [(index, "SCMP_CMP_EQ", value, 0)], RET_ALLOW))
    _check_execve_allowed(rules, default, table)

    prog = _Program()
    prog.emit(LD_W_ABS, OFFSET_ARCH)
    prog.emit(JEQ_K, info.audit_arch, jt=1)
    prog.emit(RET_K, RET_KILL_PROCESS)
    prog.emit(LD_W_ABS, OFFSET_NR)
    if arch == "x86_64":
        prog.emit(JGE_K, X32_SYSCALL_BIT, jf=1)
        prog.emit(RET_K, RET_KILL_PROCESS)
    for numbers, args, action in rules:
        _emit_rule(prog, numbers, args, action, info.big_endian)
    prog.emit(RET_K, default)
    return prog.assemble()


def _emit_rule(prog, numbers, args, action, big_endian):
    """With A = syscall number on entry and on fall-through exit."""
    if not args:
        for nr in numbers:
            prog.emit(JEQ_K, nr, jf=1)
            prog.emit(RET_K, action)
        return
    for nr in numbers:
        skip, fail = prog.label(), prog.label()
        prog.emit(JEQ_K, nr, jf=skip)
        for arg in args:
            _emit_condition(prog, arg, fail, big_endian)
        prog.emit(RET_K, action)
        prog.place(fail)
        prog.emit(LD_W_ABS, OFFSET_NR)   # the argument loads replaced A
        prog.place(skip)


def _check_execve_allowed(rules, default, table):
    """The filter is installed right before execve: if the policy denies execve, the
    service can never start, so say so now instead of failing at every spawn."""
    nr = table["execve"]
    for numbers, args, action in rules:
        if nr in numbers:
            if args:
                return   # depends on the arguments: cannot tell here
            outcome = action
            break
    else:
        outcome = default
    if outcome & 0xFFFF0000 not in (RET_ALLOW, RET_LOG):
        raise PolicyError("seccomp: policy does not allow execve, the service could never start")


# --- a reference interpreter (tests and diagnostics) ---------------------------------

def evaluate(program, nr, arch_value, args=(0, 0, 0, 0, 0, 0), big_endian=False):
    """Run a classic-BPF seccomp program on one syscall, in Python; returns the action."""
    data = _seccomp_data(nr, arch_value, args, big_endian)
    a, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == LD_W_ABS:
            a = int.from_bytes(data[k:k + 4], "big" if big_endian else "little")
        elif code == AND_K:
            a &= k
        elif code in (JEQ_K, JGT_K, JGE_K):
            taken = {JEQ_K: a == k, JGT_K: a > k, JGE_K: a >= k}[code]
            pc += jt if taken else jf
        elif code == RET_K:
            return k
        else:
            raise ValueError(f"unknown opcode {code:#x}")


def _seccomp_data(nr, arch_value, args, big_endian):
    order = "big" if big_endian else "little"
    out = (nr & 0xFFFFFFFF).to_bytes(4, order) + arch_value.to_bytes(4, order)
    out += (0).to_bytes(8, order)
    for value in list(args) + [0] * (6 - len(args)):
        out += value.to_bytes(8, order)
    return out
