"""`pyprocd initd [-s SOCKET] [-c CONFDIR] SCRIPT ACTION [ARGS...]`: run an init script on any host.

The script runs unmodified: a `#!/bin/sh /etc/rc.common` first line is
honoured through the kit's rc.common, under busybox ash where it is
installed (else /bin/sh), exactly as `/etc/init.d/NAME ACTION` runs on a
router. The kit (rc.common, functions.sh, procd.sh, jshn.sh and the
jshn/ubus/uci/validate_data commands, which run this pyprocd) is laid out
in a temporary directory for the run and removed afterwards; its `ubus`
talks to SOCKET (the daemon's bus), UCI comes from CONFDIR. A script
without the rc.common line runs as it is. The exit code is the script's.

What procd itself runs later (`SCRIPT running` after a set, trigger
commands) is started by the daemon by the script's path, so that works
where the kit is installed at / (`pyprocd kit install --root /`, an image).
"""

import os
import shutil
import subprocess
import sys
import tempfile

USAGE = "usage: pyprocd initd [-s SOCKET] [-c CONFDIR] SCRIPT ACTION [ARGS...]\n"
RC_COMMON = "/etc/rc.common"


def parse_args(argv):
    """-> (socket, confdir, script, rest) or None."""
    socket = confdir = None
    args = list(argv)
    while args and args[0].startswith("-") and args[0] != "-":
        flag = args.pop(0)
        if flag == "--":
            break
        if flag in ("-s", "-c") and args:
            value = args.pop(0)
        elif flag[:2] in ("-s", "-c") and len(flag) > 2:
            flag, value = flag[:2], flag[2:]
        else:
            return None
        if flag == "-s":
            socket = value
        else:
            confdir = value
    if len(args) < 1:
        return None
    return socket, confdir, args[0], args[1:]


def interpreter_line(script):
    try:
        with open(script, "rb") as f:
            first = f.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    return first[2:].decode("utf-8", "replace").split()


def shell():
    """busybox ash where installed (OpenWrt's /bin/sh), else /bin/sh."""
    busybox = shutil.which("busybox")
    return [busybox, "ash"] if busybox else ["/bin/sh"]


def command_for(script, kit_root, rest):
    words = interpreter_line(script)
    if words and words[-1] == RC_COMMON:
        return [*shell(), os.path.join(kit_root, "etc", "rc.common"), script, *rest]
    return [script, *rest]


def main(argv=None):
    parsed = parse_args(sys.argv[1:] if argv is None else argv)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 2
    socket, confdir, script, rest = parsed
    if not os.path.isfile(script):
        sys.stderr.write(f"pyprocd initd: {script}: no such script\n")
        return 2
    from pyprocd.initd.install import install_for_host

    kit_root = tempfile.mkdtemp(prefix="pyprocd-kit-")
    try:
        install_for_host(kit_root, socket=socket)
        os.makedirs(os.path.join(kit_root, "var", "lock"))  # procd_lock's, for this run
        env = dict(os.environ)
        env["PYPROCD_KIT_ROOT"] = kit_root
        path = os.pathsep.join(os.path.join(kit_root, d) for d in ("usr/bin", "usr/sbin", "sbin"))
        env["PATH"] = path + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        if confdir:
            env["UCI_CONFIG_DIR"] = confdir
        try:
            return subprocess.call(command_for(script, kit_root, rest), env=env)
        except OSError as e:
            sys.stderr.write(f"pyprocd initd: {script}: {e.strerror}\n")
            return 126
    finally:
        shutil.rmtree(kit_root, ignore_errors=True)
