"""Helpers the benchmark modules share: process memory, a bare-interpreter baseline, waiting."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(HERE))  # `bench.peers` when run as a script

from bench.peers.procfs import usage


def mem(pid):
    """(RSS kB, PSS kB) of one process."""
    one = usage(pid) or {}
    return one.get("rss_kb"), one.get("pss_kb")


def bare_python_mem():
    """(RSS kB, PSS kB) of `python3 -I -S` doing nothing: the same-run baseline."""
    code = "import sys; sys.stdout.write('x'); sys.stdout.flush(); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.stdout.read(1)
    result = mem(proc.pid)
    proc.stdin.close()
    proc.wait()
    return result


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)
