#!/usr/bin/env python3
"""Should the package ship byte-compiled modules? Measure it.

    python3 tools/ipk/measure.py [--runs N]

Builds the .ipk, installs its data tree into temporary roots in three forms
and times, with this host's python3, the median CPU time of
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


def time_command(argv, env, runs):
    """(median CPU seconds, median VmHWM KiB or None) of the child.

    CPU time (user+sys) is steadier than wall time on a busy machine and is
    the cost that matters on a slow single-core router. A command that prints
    its own VmHWM (peak RSS of its image; ru_maxrss would include the forked
    parent) shows what compiling sources at start-up costs in memory.
    """
    cpu, peak = [], []
    for _ in range(runs):
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
        output = child.stdout.read()
        child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, argv)
        cpu.append(usage.ru_utime + usage.ru_stime)
        if output.startswith("VmHWM"):
            peak.append(int(output.split()[1]))
    return statistics.median(cpu), (statistics.median(peak) if peak else None)


def daemon_start(root, env, runs, work):
    """(median CPU seconds, median VmHWM KiB) of the daemon from exec until its
    object is on the bus (then it is stopped), against a `pyprocd bus`."""
    command = [sys.executable, str(root / "usr/bin/pyprocd")]
    sock = work / "measure-ubus.sock"
    bus = subprocess.Popen([*command, "bus", "-s", str(sock)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu, peak = [], []
    try:
        wait_for(sock.exists)
        for run in range(runs):
            name = f"measure{run}"
            daemon = subprocess.Popen(
                [*command, "-s", str(sock), "--object", name, "--syslog", str(work / "nolog")],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda n=name: subprocess.run(
                [*command, "ubus", "-s", str(sock), "list", n], check=False, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0)
            with open(f"/proc/{daemon.pid}/status") as f:
                peak.append(int(next(line for line in f if line.startswith("VmHWM")).split()[1]))
            daemon.terminate()
            _, status, usage = os.wait4(daemon.pid, 0)
            daemon.returncode = os.waitstatus_to_exitcode(status)
            cpu.append(usage.ru_utime + usage.ru_stime)
    finally:
        bus.terminate()
        bus.wait()
    return statistics.median(cpu), statistics.median(peak)


def wait_for(condition, deadline=60.0):
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("measure: condition not met in time")
        time.sleep(0.02)


def forms(base_root, package_dir):
    """Make the three installed forms; yield (name, root)."""
    for name in ("sources", "pycache", "pyc-only"):
        root = base_root.parent / name
        shutil.copytree(base_root, root, symlinks=True)
        pkg = root / package_dir.lstrip("/")
        if name == "pycache":
            compileall.compile_dir(str(pkg), quiet=1)
        elif name == "pyc-only":
            compileall.compile_dir(str(pkg), quiet=1, legacy=True)
            for source in pkg.rglob("*.py"):
                source.unlink()
        yield name, root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pyprocd-measure-"))
    try:
        ipk = mkipk.build(work / "out")
        package = mkipk.Package()
        base = work / "base"
        install(ipk, base)
        print(f"host python {sys.version.split()[0]}, median of {args.runs} runs")
        print(f".ipk file {ipk.stat().st_size} B; data tree {tree_size(base)} B "
              f"(Python package {tree_size(base / package.package_dir.lstrip('/'))} B)")
        bare = [sys.executable, "-c", (
            'print(open("/proc/self/status").read()'
            '[open("/proc/self/status").read().index("VmHWM"):].split(chr(10))[0])'
        )]
        cpu, peak = time_command(bare, dict(os.environ), args.runs)
        print(f"bare python3: {cpu * 1000:.1f} ms CPU, peak RSS {peak} KiB")
        for name, root in forms(base, package.package_dir):
            pkg = root / package.package_dir.lstrip("/")
            env = dict(os.environ, PYTHONPATH=str(root / package.site_packages.lstrip("/")),
                       PYTHONDONTWRITEBYTECODE="1")
            timings = []
            for label, template in COMMANDS.items():
                argv = [sys.executable] + [a.format(root=root) for a in template]
                cpu, peak = time_command(argv, env, args.runs)
                timings.append(f"{label}: {cpu * 1000:.1f} ms CPU"
                               + (f", peak RSS {peak} KiB" if peak else ""))
            cpu, peak = daemon_start(root, env, args.runs, work)
            timings.append(f"daemon until its object is up (+ stop): {cpu * 1000:.1f} ms CPU, "
                           f"peak RSS {peak} KiB")
            print(f"{name:9s} package {tree_size(pkg)} B "
                  f"(.py {tree_size(pkg, '*.py')} B, .pyc {tree_size(pkg, '*.pyc')} B)\n"
                  + "".join(f"    {t}\n" for t in timings), end="")
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
