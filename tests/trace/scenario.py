"""Run the tracer as the child of a subreaper and report what it left behind.

    python3 scenario.py ACTION MARKS -- TRACER-ARGV...     (prints one JSON object)

ACTION, done once the traced program has written "pid N" to MARKS:
  none            nothing (the program ends by itself)
  kill-program    SIGKILL the traced program
  kill-tracer     SIGKILL the tracer
  term-tracer     SIGTERM the tracer (a supervisor's stop)
  usr1-tracer     SIGUSR1 the tracer (a supervisor's `signal` or reload_signal)

Anything the tracer leaves comes to this process (the nearest subreaper): a zombie is
reaped and counted, a live (running or stopped) process is reported and then killed.
"""

import json
import os
import signal
import subprocess
import sys
import time

from pyprocd.process import shim

DEADLINE = 60.0


def wait_for_pid(marks, proc):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end and proc.poll() is None:
        try:
            with open(marks) as f:
                for line in f:
                    if line.startswith("pid "):
                        return int(line.split()[1])
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"the traced program never wrote its pid (tracer status {proc.poll()})")


def children():
    """(pid, state) of every process whose parent is this one."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[1]) == me:
            found.append((int(entry), fields[0].decode()))
    return found


def leftovers(tracer_pid):
    """Reap zombies handed to us; report what still lives after a grace period."""
    reaped, end = 0, time.monotonic() + 10.0
    while True:
        alive = [(pid, state) for pid, state in children() if pid != tracer_pid]
        for pid, state in alive:
            if state == "Z":
                os.waitpid(pid, 0)
                reaped += 1
        alive = [(pid, state) for pid, state in alive if state != "Z"]
        if not alive or time.monotonic() > end:
            break
        time.sleep(0.05)
    for pid, _ in alive:
        os.kill(pid, signal.SIGKILL)
    return reaped, alive


def main(argv):
    action, marks = argv[0], argv[1]
    tracer_argv = argv[argv.index("--") + 1:]
    shim.set_child_subreaper(True)
    proc = subprocess.Popen(tracer_argv, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if action != "none":
        program = wait_for_pid(marks, proc)
        target = program if action == "kill-program" else proc.pid
        sent = {"term-tracer": signal.SIGTERM, "usr1-tracer": signal.SIGUSR1}
        os.kill(target, sent.get(action, signal.SIGKILL))
    try:
        proc.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SystemExit("the tracer did not exit")
    stderr = proc.stderr.read().decode(errors="replace")
    reaped, alive = leftovers(proc.pid)
    json.dump({"returncode": proc.returncode, "stderr": stderr, "reaped_orphans": reaped,
               "alive": alive}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
