#!/usr/bin/env python3
"""Should the package ship byte-compiled modules? Measure it.

    python3 tools/ipk/measure.py [--runs N]

Builds the .ipk, installs its data tree into temporary roots in three forms
and takes, with this host's python3 and the forms interleaved run by run,
the median CPU time of
  - `pyprocd --version` (the installed launcher), and
  - importing every module of the package (what a running daemon loads,
    at most), and
  - the daemon itself, from exec until its object is on a `pyprocd bus`
    (then stopped), with its peak RSS,
for each form:
  sources   .py only, bytecode never written: OpenWrt's python3 does not
            write .pyc by itself, so this is every start without postinst's
            compile (e.g. an image built with the package preinstalled);
  pycache   .py + __pycache__/*.pyc, what postinst-pkg leaves on the router;
  pyc-only  legacy .pyc next to where the .py was, sources deleted: what the
            feed's Py3Package install ships (python3-package.mk convention).
It also prints the installed sizes. Numbers are for this host; a router's
CPU is one to two orders of magnitude slower, the ratios carry over.
"""

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mkipk

# Every module of the package, imported: the daemon imports its layers lazily
# from pyprocd.daemon.main, and a running daemon ends up with nearly all.
IMPORT_ALL = """
import importlib, pkgutil, pyprocd
for m in pkgutil.walk_packages(pyprocd.__path__, "pyprocd."):
    if not m.name.rsplit(".", 1)[-1].startswith("_"):
        try:
            importlib.import_module(m.name)
        except Exception:
            pass
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0], end="")
"""

FORMS = ("sources", "pycache", "pyc-only")
DAEMON = "daemon until its object is up (+ stop)"
BARE = 'print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0], end="")'

COMMANDS = {
    "pyprocd --version": ["{root}/usr/bin/pyprocd", "--version"],
    "import all modules": ["-c", IMPORT_ALL],
}


def install(ipk_path, root):
    sys.path.insert(0, str(mkipk.ROOT / "tests" / "packaging"))
    from pkg_helpers import Ipk  # the tests' unpacker: plain tarfile

    Ipk(ipk_path).install(root)


def tree_size(path, pattern="*"):
    return sum(p.stat().st_size for p in Path(path).rglob(pattern) if p.is_file())


def run_once(argv, env):
    """(CPU seconds, VmHWM KiB or None) of one run of argv.

    CPU time (user+sys) is steadier than wall time on a busy machine and is
    the cost that matters on a slow single-core router. A command that prints
    its own VmHWM (peak RSS of its image; ru_maxrss would include the forked
    parent) shows what compiling sources at start-up costs in memory.
    """
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    child.stdout.close()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, argv)
    peak = int(output.split()[1]) if output.startswith("VmHWM") else None
    return usage.ru_utime + usage.ru_stime, peak


def daemon_once(command, env, sock, name, work):
    """(CPU seconds, VmHWM KiB) of the daemon from exec until its object is
    on the bus, then stopped."""
    daemon = subprocess.Popen(
        [*command, "-s", str(sock), "--object", name, "--syslog", str(work / "nolog")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run(
            [*command, "ubus", "-s", str(sock), "list", name], check=False, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0)
        with open(f"/proc/{daemon.pid}/status") as f:
            peak = int(next(line for line in f if line.startswith("VmHWM")).split()[1])
    finally:
        daemon.terminate()
        _, status, usage = os.wait4(daemon.pid, 0)
        daemon.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, peak


def wait_for(condition, deadline=60.0):
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("measure: condition not met in time")
        time.sleep(0.02)


def make_forms(base_root, package_dir):
    """The three installed forms: {name: root}."""
    roots = {}
    for name in FORMS:
        root = base_root.parent / name
        shutil.copytree(base_root, root, symlinks=True)
        pkg = root / package_dir.lstrip("/")
        if name == "pycache":
            compileall.compile_dir(str(pkg), quiet=1)
        elif name == "pyc-only":
            compileall.compile_dir(str(pkg), quiet=1, legacy=True)
            for source in pkg.rglob("*.py"):
                source.unlink()
        roots[name] = root
    return roots


def median(samples):
    values = [v for v in samples if v is not None]
    return statistics.median(values) if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pyprocd-measure-"))
    bus = None
    try:
        ipk = mkipk.build(work / "out")
        package = mkipk.Package()
        base = work / "base"
        install(ipk, base)
        roots = make_forms(base, package.package_dir)
        envs = {name: dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                           PYTHONPATH=str(root / package.site_packages.lstrip("/")))
                for name, root in roots.items()}
        commands = {name: [sys.executable, str(root / "usr/bin/pyprocd")]
                    for name, root in roots.items()}
        sock = work / "measure-ubus.sock"
        bus = subprocess.Popen([*commands["pyc-only"], "bus", "-s", str(sock)],
                               env=envs["pyc-only"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        wait_for(sock.exists)

        # Interleaved: every round runs every form once, so a busy moment of
        # the machine hits all forms alike.
        samples = {}
        bare = [sys.executable, "-c", BARE]
        for run in range(args.runs):
            samples.setdefault(("bare", "python3"), []).append(run_once(bare, dict(os.environ)))
            for name, root in roots.items():
                for label, template in COMMANDS.items():
                    argv = [sys.executable] + [a.format(root=root) for a in template]
                    samples.setdefault((name, label), []).append(run_once(argv, envs[name]))
                samples.setdefault((name, DAEMON), []).append(
                    daemon_once(commands[name], envs[name], sock, f"m{run}{name[:2]}", work))

        print(f"host python {sys.version.split()[0]}, median of {args.runs} interleaved runs")
        print(f".ipk file {ipk.stat().st_size} B; data tree {tree_size(base)} B "
              f"(Python package {tree_size(base / package.package_dir.lstrip('/'))} B)")
        cpu, peak = (median(col) for col in zip(*samples[("bare", "python3")]))
        print(f"bare python3: {cpu * 1000:.1f} ms CPU, peak RSS {peak} KiB")
        for name, root in roots.items():
            pkg = root / package.package_dir.lstrip("/")
            print(f"{name:9s} package {tree_size(pkg)} B "
                  f"(.py {tree_size(pkg, '*.py')} B, .pyc {tree_size(pkg, '*.pyc')} B)")
            for label in [*COMMANDS, DAEMON]:
                cpu, peak = (median(col) for col in zip(*samples[(name, label)]))
                print(f"    {label}: {cpu * 1000:.1f} ms CPU"
                      + (f", peak RSS {peak} KiB" if peak else ""))
    finally:
        if bus is not None:
            bus.terminate()
            bus.wait()
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
