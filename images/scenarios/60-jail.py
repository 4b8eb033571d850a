#!/usr/bin/python3
"""Jails on the router's kernel and CPU (the guest's /init puts the root on a mount
pivot_root accepts, as a router's real root file system is): an instance with a `jail` table runs in new
mount/pid/ipc/uts namespaces on a fresh root that holds its program and libraries
but nothing else of the host's, with its own hostname and a read-only root; the pid
in `list` is the supervisor outside, and a stop leaves no process and no mount.
"""

import os

import qt

NAMESPACES = ("mnt", "pid", "ipc", "uts")
ARGV = ["/bin/busybox", "sh", "-c",
        "echo jailed-as-$(/bin/busybox hostname); exec /bin/busybox sleep 1000"]


def ns(pid, kind):
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def program_of(supervisor):
    """The jailed program: the supervisor's only child, once it exec'd busybox."""
    def found():
        try:
            with open(f"/proc/{supervisor}/task/{supervisor}/children") as f:
                kids = f.read().split()
            if kids and os.readlink(f"/proc/{kids[0]}/exe").endswith("busybox"):
                return int(kids[0])
        except OSError:
            return None
        return None
    return qt.wait(found, timeout=120)


def jail_mounts():
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if "pyprocd-jail" in line]


def main():
    qt.ubus("set", {"name": "qt_jail", "instances": {"i": {
        "command": ARGV, "stdout": True, "term_timeout": 2,
        "jail": {"name": "qtjail", "hostname": "qtjail", "procfs": True, "ronly": True}}}})
    inst = qt.wait(lambda: qt.instances(qt.service_list("qt_jail", poll=True), "qt_jail")
                   .get("i", {}).get("running") and
                   qt.instances(qt.service_list("qt_jail", poll=True), "qt_jail")["i"], 120)
    qt.check("jailed-instance-runs", inst, "qt_jail never listed running")
    if not inst:
        qt.finish()
        return
    supervisor = inst["pid"]
    program = program_of(supervisor)
    qt.check("jail-has-a-program-inside", program, f"no exec'd child under {supervisor}")
    if program:
        differ = {k: ns(program, k) != ns(1, k) for k in (*NAMESPACES, "net")}
        qt.check("jail-namespaces-as-asked",
                 all(differ[k] for k in NAMESPACES) and not differ["net"], f"differ {differ}")
        root = f"/proc/{program}/root"
        qt.check("jail-root-holds-the-program", os.path.exists(f"{root}/bin/busybox"))
        qt.check("jail-root-holds-nothing-else", not os.path.exists(f"{root}/usr/bin/python3"),
                 os.listdir(root))
        with open(f"/proc/{program}/mountinfo") as f:
            root_line = next((line for line in f if line.split()[4] == "/"), "")
        qt.check("jail-root-is-read-only", " ro" in f" {root_line.split()[5]}",
                 f"root mount: {root_line.strip()}")
        said = qt.wait(lambda: any(line.endswith("jailed-as-qtjail") for line in
                                   qt.syslog_lines()), 60)
        qt.check("jail-hostname-inside", said, "no `jailed-as-qtjail` line in syslog")
    qt.check("jail-list-shows-jail", "jail" in inst, f"list entry {sorted(inst)}")
    qt.ubus("delete", {"name": "qt_jail"})
    gone = qt.wait(lambda: not qt.alive(supervisor) and (not program or not qt.alive(program)),
                   60)
    qt.check("jail-stop-leaves-no-process", gone, f"supervisor {supervisor} program {program}")
    qt.check("jail-stop-leaves-no-mount", qt.wait(lambda: not jail_mounts(), 60),
             "".join(jail_mounts()))
    qt.finish()


if __name__ == "__main__":
    main()
