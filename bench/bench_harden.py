"""Cost of child hardening, measured within one run so ratios are comparable.

run(quick) -> dict with:
  spawn:   fork + harden + exec of /bin/true until exit, plain vs hardened (seccomp
           filter of a utrace-sized whitelist + capabilities when root), interleaved;
           the ratio hardened/plain.
  prepare: parent-side cost of harden.prepare() (read JSON, check, compile BPF).
  syscall: a child looping over getppid() with and without the filter (getppid is
           matched last: the worst case of the linear rule scan), ratio.
  memory:  RSS added by loading the shim (out-of-line ABI mode, _cffi_backend only)
           vs an in-line cdef (cffi + pycparser), each in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from bench.peers.stats import ratio, summarize
from pyprocd.process import harden, syscalls

TRUE = "/bin/true"
# A whitelist the size utrace writes for a small daemon, getppid matched last.
WHITELIST = ["read", "write", "openat", "close", "fstat", "newfstatat", "lseek", "mmap",
             "mprotect", "munmap", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
             "ioctl", "pread64", "readv", "writev", "access", "pipe", "pipe2", "select",
             "poll", "ppoll", "sched_yield", "mremap", "madvise", "dup", "dup2", "dup3",
             "nanosleep", "clock_nanosleep", "getpid", "socket", "connect", "accept",
             "accept4", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown", "bind",
             "listen", "getsockname", "getpeername", "socketpair", "setsockopt",
             "getsockopt", "clone", "fork", "vfork", "execve", "exit", "wait4", "kill",
             "uname", "fcntl", "flock", "fsync", "getcwd", "chdir", "rename", "mkdir",
             "rmdir", "unlink", "readlink", "chmod", "umask", "gettimeofday", "getrlimit",
             "getuid", "getgid", "geteuid", "getegid", "setsid", "arch_prctl", "futex",
             "set_tid_address", "set_robust_list", "rseq", "prlimit64", "getrandom",
             "exit_group", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
             "eventfd2", "statx", "clock_gettime", "sysinfo", "getdents64", "getppid"]
CAPS = {"bounding": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "effective": ["CAP_NET_BIND_SERVICE"], "permitted": ["CAP_NET_BIND_SERVICE"]}


def _policy(arch):
    table = syscalls.numbers(arch)
    names = [n for n in WHITELIST if n in table]
    return {"defaultAction": "SCMP_ACT_KILL_PROCESS",
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}


def _spawn_once(argv, plan):
    """fork, harden in spawn.py's order, exec; wait. Seconds for the whole round."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            if plan is not None:
                plan.before_setuid()
                plan.after_setuid()
                plan.apply_in_child()
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"hardened child failed: status {status:#x}")
    return elapsed


def _write_json(folder, name, document):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump(document, f)
    return path


def _bench_spawn(folder, rounds, arch):
    policy = _write_json(folder, "policy.json", _policy(arch))
    caps = _write_json(folder, "caps.json", CAPS) if os.geteuid() == 0 else None
    plan = harden.prepare(True, caps, policy)
    plain, hardened = [], []
    for _ in range(rounds):          # interleaved: drift hits both equally
        plain.append(_spawn_once([TRUE], None))
        hardened.append(_spawn_once([TRUE], plan))
    a, b = summarize(hardened), summarize(plain)
    return {"plain_s": b["median"], "hardened_s": a["median"], "ratio": ratio(a, b),
            "with_caps": caps is not None, "filter_insns": len(plan.program),
            "rounds": rounds}, policy, caps


def _bench_prepare(policy, caps, rounds):
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        harden.prepare(True, caps, policy)
        samples.append(time.perf_counter() - start)
    return {"median_s": summarize(samples)["median"], "rounds": rounds}


LOOP = "import os,time\nt=time.perf_counter()\nfor _ in range({n}): os.getppid()\n" \
       "print(time.perf_counter()-t)"


def _loop_once(plan, n):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(w, 1)
            if plan is not None:
                plan.apply_in_child()
            os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", LOOP.format(n=n)])
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return float(out) / n


def _bench_syscall(policy, rounds, n):
    # Python's start-up needs more than the whitelist: a default-allow copy, same rules.
    # Kernels >= 5.11 cache "always allowed" syscalls in a bitmap and skip the filter
    # for them; older kernels (many routers) run the whole linear scan every time.
    with open(policy) as f:
        document = json.load(f)
    document["defaultAction"] = "SCMP_ACT_ALLOW"
    document["syscalls"].insert(0, {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"})
    path = policy + ".allow.json"
    with open(path, "w") as f:
        json.dump(document, f)
    plan = harden.prepare(False, None, path)
    plain, filtered = [], []
    for _ in range(rounds):
        plain.append(_loop_once(None, n))
        filtered.append(_loop_once(plan, n))
    a, b = summarize(filtered), summarize(plain)
    return {"plain_per_call_s": b["median"], "filtered_per_call_s": a["median"],
            "ratio": ratio(a, b), "calls": n}


RSS = ("import sys\nsys.path.insert(0, {src!r})\n"
       "def rss():\n"
       "    for line in open('/proc/self/status'):\n"
       "        if line.startswith('VmRSS'):\n"
       "            return int(line.split()[1])\n"
       "before = rss()\n{body}\nprint(rss() - before)")
OUT_OF_LINE = "from pyprocd.process import shim\nshim.ffi_and_lib()"
IN_LINE = ("import cffi\nfrom pyprocd.process._shim_build import CDEF\n"
           "ffi = cffi.FFI(); ffi.cdef(CDEF); ffi.dlopen(None)")


def _rss_delta_kb(body):
    out = subprocess.run([sys.executable, "-I", "-c", RSS.format(src=SRC, body=body)],
                         capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        return None
    return int(out.stdout.split()[-1])


def _bench_memory(rounds):
    shim = summarize([_rss_delta_kb(OUT_OF_LINE) for _ in range(rounds)])
    inline = summarize([_rss_delta_kb(IN_LINE) for _ in range(rounds)])
    return {"shim_kb": shim["median"], "inline_cdef_kb": inline["median"],
            "ratio": ratio(shim, inline)}


def run(quick):
    arch = syscalls.host_arch()
    rounds = 15 if quick else 100
    with tempfile.TemporaryDirectory(prefix="bench-harden-") as folder:
        spawn, policy, caps = _bench_spawn(folder, rounds, arch)
        return {
            "arch": arch,
            "spawn": spawn,
            "prepare": _bench_prepare(policy, caps, rounds),
            "syscall": _bench_syscall(policy, 5 if quick else 15, 20000 if quick else 200000),
            "memory": _bench_memory(3 if quick else 7),
        }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
