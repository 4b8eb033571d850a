"""Cost of `pyprocd trace`, measured within one run so the ratio is comparable.

run(quick) -> dict with:
  run:      wall time of the same syscall-heavy program (a Python loop of getppid
            calls, plus the interpreter's own start-up) run directly and under the
            tracer, interleaved; the ratio traced/plain.
  per_call: the extra time per traced syscall: (traced - plain) / calls, where calls is
            the loop's count (every syscall makes two ptrace stops, entry and exit).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from bench.peers.stats import ratio, summarize

LOOP = "import os\nfor _ in range({n}): os.getppid()\n"


def _program(calls):
    return [sys.executable, "-I", "-S", "-c", LOOP.format(n=calls)]


def _time(argv, env):
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _bench_run(folder, rounds, calls):
    env = dict(os.environ, PYTHONPATH=SRC)
    policy = os.path.join(folder, "policy.json")
    traced_argv = [sys.executable, "-m", "pyprocd.trace", "-f", policy, "--", *_program(calls)]
    plain, traced = [], []
    for _ in range(rounds):          # interleaved: drift hits both equally
        plain.append(_time(_program(calls), env))
        traced.append(_time(traced_argv, env))
    with open(policy) as f:
        names = json.load(f)["syscalls"][0]["names"]
    if "getppid" not in names:
        raise RuntimeError("the traced loop's getppid is missing from the policy")
    a, b = summarize(traced), summarize(plain)
    per_call = (a["median"] - b["median"]) / calls
    return {"plain_s": b["median"], "traced_s": a["median"], "ratio": ratio(a, b),
            "calls": calls, "rounds": rounds, "policy_names": len(names)}, per_call


def run(quick):
    rounds = 5 if quick else 15
    calls = 20000 if quick else 200000
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as folder:
        result, per_call = _bench_run(folder, rounds, calls)
    return {"run": result, "per_call": {"extra_s": per_call}}


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
