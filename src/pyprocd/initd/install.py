"""`pyprocd kit install --root DIR`: lay the init-script kit out as on a router.

    DIR/etc/rc.common
    DIR/lib/functions.sh, DIR/lib/functions/procd.sh
    DIR/lib/config/uci.sh
    DIR/usr/share/libubox/jshn.sh
    DIR/usr/bin/jshn, DIR/usr/bin/ubus, DIR/sbin/uci, DIR/sbin/validate_data
    DIR/usr/lib/pyprocd/  a copy of the pyprocd package and its launcher

The commands are small shell scripts that run pyprocd from DIR/usr/lib/pyprocd,
found from their own path, so the tree keeps working when DIR becomes / (a
chroot, an image). Existing directory symlinks in DIR (a merged /usr: sbin ->
usr/sbin) are followed, existing files are replaced.
"""

import os
import shutil
import sys

KIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kit")
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# kit file -> (path on the router, mode)
SHELL_FILES = {
    "rc.common": ("etc/rc.common", 0o755),
    "functions.sh": ("lib/functions.sh", 0o644),
    "procd.sh": ("lib/functions/procd.sh", 0o644),
    "uci.sh": ("lib/config/uci.sh", 0o644),
    "jshn.sh": ("usr/share/libubox/jshn.sh", 0o644),
}
# command on the router -> pyprocd subcommand
COMMANDS = {
    "usr/bin/jshn": "jshn",
    "usr/bin/ubus": "ubus",
    "sbin/uci": "uci",
    "sbin/validate_data": "validate_data",
}
LIBDIR = "usr/lib/pyprocd"
LAUNCHER = "pyprocd-run.py"
LAUNCHER_TEXT = """\
# Runs the pyprocd next to this file (its directory is sys.path[0]).
import sys

from pyprocd.initd.commands import main

sys.exit(main())
"""
# From usr/bin or usr/sbin the package is in ../lib/pyprocd; from a /sbin
# that is no link to usr/sbin, in ../usr/lib/pyprocd.
COMMAND_TEXT = """\
#!/bin/sh
# {name}: pyprocd's `{sub}`, from the copy installed with the kit
lib="${{0%/*}}/../lib/pyprocd"
[ -e "$lib/{launcher}" ] || lib="${{0%/*}}/../usr/lib/pyprocd"
exec {python} -s -S "$lib/{launcher}" --as "$0" {sub} "$@"
"""

# A host-side kit (`pyprocd initd`): the commands run the pyprocd that runs
# now, from where it is, and `ubus` talks to the given socket.
HOST_COMMAND_TEXT = """\
#!/bin/sh
# {name}: pyprocd's `{sub}` for `pyprocd initd`
PYTHONPATH={pythonpath} exec {python} -s -S -m pyprocd.initd.commands --as "$0" {sub} {extra}"$@"
"""

USAGE = "usage: pyprocd kit install --root DIR [--python INTERPRETER]\n"


def _write(path, data, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _copy_package(dest):
    target = os.path.join(dest, "pyprocd")
    if os.path.isdir(target):
        shutil.rmtree(target)
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _shell_files(root):
    written = []
    for name, (rel, mode) in SHELL_FILES.items():
        with open(os.path.join(KIT, name), "rb") as f:
            _write(os.path.join(root, rel), f.read(), mode)
        written.append(rel)
    return written


def install_for_host(root, socket=None, python=None):
    """The kit below `root` with commands that run this pyprocd (no copy) on `socket`."""
    import shlex

    written = _shell_files(root)
    python = shlex.quote(python or sys.executable)
    pythonpath = shlex.quote(os.path.dirname(PACKAGE))
    for rel, sub in COMMANDS.items():
        extra = f"-s {shlex.quote(socket)} " if sub == "ubus" and socket else ""
        text = HOST_COMMAND_TEXT.format(name=os.path.basename(rel), sub=sub, python=python,
                                        pythonpath=pythonpath, extra=extra)
        _write(os.path.join(root, rel), text.encode(), 0o755)
        written.append(rel)
    return written


def install(root, python="python3"):
    """Install the kit below `root`; returns the paths written (relative to root)."""
    written = _shell_files(root)
    libdir = os.path.join(root, LIBDIR)
    os.makedirs(libdir, exist_ok=True)
    _copy_package(libdir)
    _write(os.path.join(libdir, LAUNCHER), LAUNCHER_TEXT.encode(), 0o644)
    written.append(LIBDIR)
    for rel, sub in COMMANDS.items():
        text = COMMAND_TEXT.format(name=os.path.basename(rel), sub=sub, python=python,
                                   launcher=LAUNCHER)
        _write(os.path.join(root, rel), text.encode(), 0o755)
        written.append(rel)
    return written


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "install":
        sys.stderr.write(USAGE)
        return 2
    root, python = None, "python3"
    args.pop(0)
    while args:
        flag = args.pop(0)
        if flag in ("--root", "--python") and args:
            value = args.pop(0)
        elif flag.startswith(("--root=", "--python=")):
            flag, value = flag.split("=", 1)
        else:
            sys.stderr.write(USAGE)
            return 2
        if flag == "--root":
            root = value
        else:
            python = value
    if root is None:
        sys.stderr.write(USAGE)
        return 2
    for rel in install(root, python):
        print(os.path.join(root, rel))
    return 0
