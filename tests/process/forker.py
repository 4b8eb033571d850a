"""A test service whose grandchild outlives its parent.

    forker.py stay PIDFILE       main stays; an intermediate child forks a grandchild
                                 and exits (the grandchild is orphaned)
    forker.py daemonize PIDFILE  classic double fork: main exits too once the
                                 grandchild has written PIDFILE

The grandchild writes its pid to PIDFILE (atomically) and lives until signalled.
"""

import os
import sys
import time


def grandchild(pidfile):
    tmp = pidfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(tmp, pidfile)
    time.sleep(600)
    os._exit(0)


def main(mode, pidfile):
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            grandchild(pidfile)
        os._exit(0)
    os.waitpid(middle, 0)
    deadline = time.monotonic() + 120
    while not os.path.exists(pidfile) and time.monotonic() < deadline:
        time.sleep(0.01)
    if mode == "daemonize":
        os._exit(0)
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
