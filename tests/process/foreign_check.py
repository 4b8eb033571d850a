"""Self-check of the shim and the seccomp filter, meant to run under another ABI's
Python (e.g. an i386 or armhf interpreter on this machine): prints a JSON report.

    FOREIGN_PYTHON foreign_check.py SRC_DIR
"""

import json
import os
import resource
import signal
import struct
import sys

sys.path.insert(0, sys.argv[1])

from pyprocd.process import harden, shim, syscalls


def layouts():
    ffi, _ = shim.ffi_and_lib()
    names = ["struct sock_filter", "struct sock_fprog", "struct user_cap_header",
             "struct user_cap_data", "struct rlimit64_k"]
    return {n: ffi.sizeof(n) for n in names} | {
        "fprog.filter": ffi.offsetof("struct sock_fprog", "filter"),
        "rlimit.max": ffi.offsetof("struct rlimit64_k", "rlim_max")}


def in_child(action):
    """Run action() in a forked child; its return value (an int) comes back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, str(action()).encode())
        except OSError as e:
            os.write(w, f"OSError {e.errno}".encode())
        os._exit(0)
    os.close(w)
    out = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return out


def prlimit_64():
    shim.prlimit(resource.RLIMIT_FSIZE, 1 << 40, None)
    return shim.prlimit(resource.RLIMIT_FSIZE)[0]


def filtered(plan):
    def run():
        plan.apply_in_child()
        results = []
        for call in (lambda: os.chdir("/"), lambda: os.kill(os.getpid(), 0),
                     lambda: os.kill(os.getpid(), signal.SIGCHLD)):
            try:
                call()
                results.append("ok")
            except OSError as e:
                results.append(str(e.errno))
        with open("/proc/self/status") as f:
            seccomp_line = next(x for x in f if x.startswith("Seccomp:"))
        return ",".join(results) + "," + seccomp_line.split()[1]
    return run


def main():
    policy = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"foreign-{os.getpid()}.json")
    with open(policy, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}, f)
    try:
        plan = harden.prepare(False, None, policy)
    finally:
        os.unlink(policy)
    effective, permitted, _ = shim.capget()
    with open("/proc/self/status") as f:
        status = dict(x.split(":\t", 1) for x in f.read().splitlines() if ":\t" in x)
    report = {
        "arch": syscalls.host_arch(), "pointer": struct.calcsize("P"),
        "byteorder": sys.byteorder, "layouts": layouts(),
        "capget_matches": effective == int(status["CapEff"], 16)
        and permitted == int(status["CapPrm"], 16),
        "prlimit_fsize": in_child(prlimit_64),
        "seccomp": in_child(filtered(plan)),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
