"""A tiny stand-in daemon built on the real lifecycle code, for tests.

    python3 dummy_daemon.py [lifecycle options] --marker=FILE [--fail=N] [--raise]

Writes "<pid> <n>" to FILE once ready (n = how many times it was started,
counted in FILE.count), then runs until SIGTERM (clean exit 0).
--fail=N: exit N during start-up (before ready). --raise: unhandled exception
before ready. --raise-after-ready: unhandled exception right after ready.
"""

import os
import signal
import sys

from pyprocd.daemon import lifecycle


def main(argv):
    opts, rest = lifecycle.parse_args(argv)
    args = dict(a.lstrip("-").partition("=")[::2] for a in rest)
    life = lifecycle.Lifecycle(opts)
    life.start()
    marker = args["marker"]
    starts = _count_start(marker)
    if "fail" in args:
        print("dummy: failing on purpose", file=sys.stderr)
        return int(args["fail"])
    if "raise" in args:
        raise RuntimeError("dummy start-up bug")
    from pyprocd.loop import Loop  # the heavy part comes after start()

    loop = Loop()
    loop.add_signal_handler(signal.SIGTERM, lambda s: loop.stop())
    _write_atomic(marker, f"{os.getpid()} {starts} {os.getcwd()}\n")
    life.notify_ready()
    if "raise-after-ready" in args and starts == 1:
        raise RuntimeError("dummy bug after ready")
    loop.run()
    life.finish()
    return 0


def _count_start(marker):
    path = marker + ".count"
    try:
        with open(path) as f:
            n = int(f.read()) + 1
    except FileNotFoundError:
        n = 1
    _write_atomic(path, str(n))
    return n


def _write_atomic(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
