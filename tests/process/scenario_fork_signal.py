"""Runs in its own process (it installs signal handlers and a wakeup fd, which must not
leak into pytest): a signal that reaches a forked child before exec must act on the child,
never on the daemon's handlers.

The spawner's child setup is wrapped so that the child signals itself first thing after
fork, standing in for a `kill` that races the exec (a watchdog with timeout 0 does that).
Prints one JSON line: what the parent's handler saw and how the child ended.
"""

import json
import os
import sys

from pyprocd.core.spec import Facts, parse_instance
from pyprocd.loop import Loop
from pyprocd.process import spawn


class Quiet:
    def send(self, priority, ident, message):
        pass


def main(signum):
    loop = Loop()
    seen = []
    loop.add_signal_handler(signum, seen.append)
    real_child = spawn._child

    def child_signalled_before_exec(*args):
        os.kill(os.getpid(), signum)
        real_child(*args)

    spawn._child = child_signalled_before_exec
    spawner = spawn.Spawner(loop, Quiet())
    spec = parse_instance("i", {"command": ["/bin/true"]}, Facts())
    exits = []
    # on_forked without announce: the gated fork path (what a daemon with a state
    # file takes for an instance posix_spawn cannot start); a plain instance is
    # posix_spawn'd and runs none of the daemon's Python.
    spawner.spawn(spec, lambda status, error: exits.append(status), lambda running: None)
    loop.run_until(lambda: exits, 60)
    # The child's write (if any) happened before it exited: one more turn drains it.
    loop.run_once(0)
    status = exits[0] if exits else None
    print(json.dumps({
        "parent_saw": seen,
        "child_signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
        "child_exit": os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None,
    }))
    loop.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))
