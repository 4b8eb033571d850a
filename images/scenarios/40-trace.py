#!/usr/bin/python3
"""Trace on the router, with this CPU's own syscall numbering (mips o32 starts at 4000):
an instance with `trace` records its program's syscalls; the recorded policy fed back
as `seccomp` lets the program run; the same policy without one recorded call makes
the program meet the policy's action at that call.

Everything goes through the running daemon (`pyprocd ubus call service ...`) and
is read back from `service list` and the policy files.
"""

import json
import os
import signal

import qt

DIR = "/tmp/qt-trace"
RECORDED = f"{DIR}/recorded.json"
# busybox's `uname` makes the uname call, which nothing in its start-up does
ARGV = ["/bin/busybox", "uname", "-a"]


def last_exit(name):
    listing = qt.service_list(name, verbose=True, poll=True)
    exits = qt.instances(listing, name).get("i", {}).get("exits") or []
    return exits[-1] if exits else None


def run_to_exit(name, **keys):
    qt.ubus("set", {"name": name, "instances": {"i": {"command": ARGV, **keys}}})
    return qt.wait(lambda: last_exit(name), timeout=300)


def policy_names(path):
    with open(path) as f:
        return [n for rule in json.load(f)["syscalls"] for n in rule["names"]]


def main():
    os.makedirs(DIR, exist_ok=True)
    traced = run_to_exit("qt_traced", trace=True, env={"SECCOMP_FILE": RECORDED})
    qt.check("traced-program-exits-0", traced and traced["exit_code"] == 0, f"exit {traced}")
    recorded = qt.wait(lambda: os.path.exists(RECORDED) and policy_names(RECORDED), timeout=60)
    qt.check("trace-writes-the-policy", recorded, f"no policy at {RECORDED}")
    if not recorded:
        qt.finish()
        return
    qt.check("policy-has-the-rare-call", "uname" in recorded, f"names {recorded}")
    qt.check("policy-has-exec", "execve" in recorded, f"names {recorded}")
    qt.figure("trace-recorded-syscalls", str(len(recorded)), "")

    allowed = run_to_exit("qt_allowed", seccomp=RECORDED)
    qt.check("recorded-policy-lets-it-run", allowed and allowed["exit_code"] == 0
             and not allowed.get("signal"), f"exit {allowed}")

    with open(RECORDED) as f:
        policy = json.load(f)
    for rule in policy["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n != "uname"]
    without = f"{DIR}/without-uname.json"
    with open(without, "w") as f:
        json.dump(policy, f)
    denied = run_to_exit("qt_denied", seccomp=without)
    # the policy's default action: utrace writes SCMP_ACT_KILL_PROCESS -> SIGSYS
    qt.check("missing-call-meets-the-action", denied and denied.get("signal") == signal.SIGSYS,
             f"exit {denied} (SIGSYS is {int(signal.SIGSYS)} here)")

    for name in ("qt_traced", "qt_allowed", "qt_denied"):
        try:
            qt.ubus("delete", {"name": name})
        except qt.UbusError as e:
            qt.note(f"cleanup: {e}")
    qt.finish()


if __name__ == "__main__":
    main()
