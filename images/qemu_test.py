#!/usr/bin/env python3
"""`make qemu-test [ARCH=mipsel|armhf|arm64]`: pyprocd on emulated routers.

    python3 images/qemu_test.py [ARCH...]            build (cached), boot, run the scenarios
    python3 images/qemu_test.py --build-only [ARCH...]
    python3 images/qemu_test.py --foreign-python ARCH  print a PYPROCD_FOREIGN_PYTHON command

Per target: the cached Debian base (builder.py) plus a payload cpio made now
from `make ipk`'s package, the guest programs and images/scenarios/; boot
it under qemu-system, read the serial console, and print one line
`<arch>: N passed, N failed`. The exit status is non-zero when anything
failed, including a guest that never reported it was done. The console
log stays in build/qemu/<arch>-console.log.

Environment: QEMU_TEST_INVERT=<scenario>/<check> (or 1 for a default check)
inverts that assertion in the guest, a negative control that must fail the
run; QEMU_TEST_TIMEOUT (s, default 1500) bounds one boot;
QEMU_TEST_JOBS (default 2) targets run at once; PYPROCD_QEMU_CACHE moves
the cache (default ~/.cache/pyprocd-qemu).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import builder
from qemu_targets import TARGETS

LOG_DIR = builder.ROOT / "build" / "qemu"
DEFAULT_INVERT = "instance/all-instances-running"
MARK = re.compile(r"@@QT (PASS|FAIL|SKIP|FIGURE|SCENARIO-END|SCENARIO|BOOT|DONE)\b ?(.*)")


class Result:
    def __init__(self, arch):
        self.arch = arch
        self.passed = []
        self.failed = []
        self.skipped = []
        self.figures = {}
        self.done = False
        self.boot_line = ""

    def feed(self, line):
        m = MARK.search(line)
        if not m:
            return None
        kind, rest = m.groups()
        if kind == "PASS":
            self.passed.append(rest)
        elif kind == "FAIL":
            self.failed.append(rest)
        elif kind == "SKIP":
            self.skipped.append(rest)
        elif kind == "FIGURE":
            name, _, value = rest.partition(" ")
            self.figures[name] = value
        elif kind == "SCENARIO-END":
            name, _, rc = rest.partition(" rc=")
            if rc.strip() != "0":
                self.failed.append(f"{name}: scenario ended with rc {rc.strip()}")
        elif kind == "DONE":
            self.done = True
        elif kind == "BOOT":
            self.boot_line = rest
        return kind

    def finish(self):
        if not self.done:
            self.failed.append("guest did not report DONE (timeout, panic or hang)")
        return self

    def summary(self):
        return f"{self.arch}: {len(self.passed)} passed, {len(self.failed)} failed"


def parse_console(arch, lines):
    result = Result(arch)
    for line in lines:
        result.feed(line)
    return result.finish()


def invert_knob():
    value = os.environ.get("QEMU_TEST_INVERT", "")
    if not value or value == "0":
        return None
    return DEFAULT_INVERT if value == "1" else value


def boot(target, base, run_cpio, log_path, timeout):
    append = f"console={target.console} panic=-1 quiet {target.append}".strip()
    invert = invert_knob()
    if invert:
        append += f" qt.invert={invert}"
    argv = ["timeout", "-k", "5", str(timeout), *target.qemu,
            "-kernel", str(base.kernel), "-initrd", str(run_cpio), "-append", append]
    result = Result(target.name)
    started = time.monotonic()
    with open(log_path, "w") as log:
        log.write(f"# {' '.join(argv)}\n")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n").replace("\r", "")
            log.write(f"[{time.monotonic() - started:7.2f}] {line}\n")
            log.flush()
            kind = result.feed(line)
            if kind in ("FAIL", "SCENARIO", "BOOT"):
                builder.log(f"{target.name}: {line[line.index('@@QT') + 5:]}")
        rc = proc.wait()
        log.write(f"# qemu exit {rc} after {time.monotonic() - started:.1f} s\n")
    return result.finish()


def run_target(target, payload, work):
    t0 = time.monotonic()
    base = builder.Base(target)
    cold = not base.ready()
    base.build()
    built = time.monotonic() - t0
    run_cpio = Path(work) / f"{target.name}-run.cpio"
    with open(run_cpio, "wb") as out:
        for part in (base.cpio, payload):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    log_path = LOG_DIR / f"{target.name}-console.log"
    timeout = int(os.environ.get("QEMU_TEST_TIMEOUT", "1500"))
    builder.log(f"{target.name}: booting ({'cold' if cold else 'cached'} base, "
              f"{built:.0f} s to build)")
    result = boot(target, base, run_cpio, log_path, timeout)
    run_cpio.unlink()
    result.wall = time.monotonic() - t0
    result.build_s = built
    result.cold = cold
    result.log_path = log_path
    return result


def report(result):
    print(result.summary(), flush=True)
    for failure in result.failed:
        print(f"  FAIL {failure}")
    for name, value in sorted(result.figures.items()):
        print(f"  figure {name}: {value}")
    print(f"  wall {result.wall:.0f} s ({'cold' if result.cold else 'cached'} base: "
          f"{result.build_s:.0f} s build; {len(result.skipped)} skipped); "
          f"console log {result.log_path}", flush=True)


def print_figures_table(results):
    """The guests' figures as the README's markdown table."""
    names = sorted({name for r in results for name in r.figures})
    print("\n| figure | " + " | ".join(r.arch for r in results) + " |")
    print("| --- |" + " ---: |" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(r.figures.get(name, "-") for r in results) + " |")
    print("| wall time of the target | " + " | ".join(
        f"{r.wall:.0f} s ({'cold' if r.cold else 'cached'})" for r in results) + " |\n")


def foreign_python(arch):
    """A command line running the target's python3 under qemu-user on this host."""
    target = TARGETS[arch]
    base = builder.Base(target).build()
    root = base.rootfs
    version = base.python_version()
    emulator = shutil.which(target.user_emulator) or target.user_emulator
    return (f"env QEMU_LD_PREFIX={root} PYTHONHOME={root}/usr "
            f"{emulator} {root}/usr/bin/python{version}")


def main(argv):
    build_only = "--build-only" in argv
    argv = [a for a in argv if a != "--build-only"]
    if argv[:1] == ["--foreign-python"]:
        print(foreign_python(argv[1]))
        return 0
    arches = argv or list(TARGETS)
    unknown = [a for a in arches if a not in TARGETS]
    if unknown:
        print(f"unknown ARCH {unknown}: choose from {' '.join(TARGETS)}", file=sys.stderr)
        return 2
    # One emulated CPU is one host thread: QEMU_TEST_JOBS targets at once
    # (default 2, this machine's cores); each keeps its own console log.
    jobs = max(1, int(os.environ.get("QEMU_TEST_JOBS", "2")))
    if build_only:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(lambda arch: builder.Base(TARGETS[arch]).build(), arches))
        return 0
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    total = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pyprocd-qemu-") as work:
        ipk = builder.build_ipk(Path(work) / "ipk")
        payload = builder.build_payload(ipk, Path(work) / "payload.cpio", work)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(lambda arch: run_target(TARGETS[arch], payload, work),
                                    arches))
    for result in results:
        report(result)
    print_figures_table(results)
    failed = sum(len(r.failed) for r in results)
    print(f"qemu-test: {len(results)} target(s) in {time.monotonic() - total:.0f} s, "
          f"{'FAILED' if failed else 'all passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
