#!/usr/bin/python3
"""An init.d script, as on a router: the kit (`pyprocd kit install --root /`,
from the installed package) gives /etc/rc.common and procd.sh; the script's
procd_open_instance/procd_set_param/procd_close_instance submit the service;
a UCI change plus `reload` restarts only the instance whose config changed;
`stop` leaves no process."""

import os
import subprocess

import qt

NAME = "qtkit"
SCRIPT = r"""#!/bin/sh /etc/rc.common
# one instance per `server` section of /etc/config/qtkit
START=50
USE_PROCD=1

start_instance() {
	local cfg="$1" port
	config_get port "$cfg" port 53
	procd_open_instance "$cfg"
	procd_set_param command /bin/sleep "$port"
	procd_set_param env QT_PORT="$port"
	procd_set_param respawn
	procd_close_instance
}

start_service() {
	config_load qtkit
	config_foreach start_instance server
}

service_triggers() {
	procd_add_reload_trigger qtkit
}
"""
CONFIG = """
config server 'a'
	option port '6001'

config server 'b'
	option port '6002'
"""


def sh(*argv):
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        qt.note(f"{' '.join(argv)}: exit {out.returncode}: {out.stderr.strip()[-500:]}")
    return out.returncode == 0


def running(names, poll=True):
    found = qt.instances(qt.service_list(NAME, poll=poll), NAME)
    if all(found.get(n, {}).get("running") for n in names):
        return {n: found[n]["pid"] for n in names}
    return None


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return [v.decode() for v in f.read().split(b"\0") if v]


def main():
    if not qt.check("kit-installs", sh("pyprocd", "kit", "install", "--root", "/")
                    and os.path.exists("/etc/rc.common"), "pyprocd kit install --root / failed"):
        qt.finish()
    with open(f"/etc/init.d/{NAME}", "w") as f:
        f.write(SCRIPT)
    os.chmod(f"/etc/init.d/{NAME}", 0o755)
    with open(f"/etc/config/{NAME}", "w") as f:
        f.write(CONFIG)

    qt.check("script-start", sh(f"/etc/init.d/{NAME}", "start"), "start exited non-zero")
    qt.wait(lambda: running(["a", "b"]), timeout=120)
    pids = running(["a", "b"], poll=False)
    if not qt.check("script-instances-running", pids, "a and b not both listed running"):
        qt.finish()
    qt.check("script-command-in-proc",
             qt.cmdline(pids["a"]) == [b"/bin/sleep", b"6001"]
             and qt.cmdline(pids["b"]) == [b"/bin/sleep", b"6002"],
             f"{qt.cmdline(pids['a'])} {qt.cmdline(pids['b'])}")
    qt.check("script-env-in-proc", "QT_PORT=6001" in environ(pids["a"]),
             f"environ of a: {environ(pids['a'])}")

    changed = sh("uci", "set", f"{NAME}.b.port=6003") and sh("uci", "commit", NAME)
    qt.check("uci-commit", changed, "uci set/commit failed")
    qt.check("script-reload", sh(f"/etc/init.d/{NAME}", "reload"), "reload exited non-zero")

    def b_restarted():
        now = running(["a", "b"])
        return now if now and now["b"] != pids["b"] else None

    qt.wait(b_restarted, timeout=120)
    after = running(["a", "b"], poll=False) or {}
    qt.check("reload-restarts-changed-instance",
             after.get("b") not in (None, pids["b"]) and qt.cmdline(after["b"]) ==
             [b"/bin/sleep", b"6003"], f"b before {pids['b']} after {after.get('b')}")
    qt.check("reload-keeps-unchanged-instance", after.get("a") == pids["a"],
             f"a before {pids['a']} after {after.get('a')}")
    qt.check("old-instance-gone", qt.wait(lambda: qt.state(pids["b"]) is None, timeout=60),
             f"old b pid {pids['b']} state {qt.state(pids['b'])}")

    qt.check("script-stop", sh(f"/etc/init.d/{NAME}", "stop"), "stop exited non-zero")
    left = list(after.values())
    qt.check("stop-leaves-no-process",
             qt.wait(lambda: not any(qt.state(p) for p in left), timeout=60),
             f"left: {[(p, qt.state(p)) for p in left if qt.state(p)]}")
    listed = qt.instances(qt.service_list(NAME), NAME)
    qt.check("stopped-instances-not-running",
             not any(i.get("running") for i in listed.values()), f"list after stop: {listed}")
    qt.finish()


if __name__ == "__main__":
    main()
