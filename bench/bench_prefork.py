"""pyprocd's commands cold vs through prefork-interp (the warm CLI server).

run(quick) -> dict:
  cold_ms:   `python3 -m pyprocd ubus -s S call service list`, median per call
  warm_ms:   the same call through `prefork-interp -U python3 .../prefork/cli.py`
             after its first call (the server is up), median per call
  first_ms:  the first warm call (sets the server up)
  bare_ms:   `python3 -c pass`, the interpreter's own floor
  warm_over_cold: warm_ms / cold_ms (same run, calls interleaved)
Every call runs in a private mount namespace (tmpfs /run/user), where the
client keeps its socket, so nothing is written to the host; needs root and
Debian's chiark-utils-bin.
"""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
WARM_CLI = os.path.join(SRC, "pyprocd", "prefork", "cli.py")
DEADLINE = 60.0


def wait_for(condition, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.02)


def timed(argv, env):
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=DEADLINE)
    elapsed = (time.perf_counter() - t0) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {done.stderr[-500:]!r}")
    return elapsed


def run(quick):
    client = shutil.which("prefork-interp")
    if client is None or os.geteuid() != 0:
        return {"available": False, "reason": "needs root and prefork-interp (chiark-utils-bin)"}
    calls = 5 if quick else 20
    env = dict(os.environ, PYTHONPATH=SRC)
    procs = []
    with tempfile.TemporaryDirectory(prefix="pyprocd-bench-prefork-") as tmp:
        sock = os.path.join(tmp, "ubus.sock")
        os.mkdir(os.path.join(tmp, "config"))
        try:
            procs.append(subprocess.Popen([sys.executable, "-m", "pyprocd", "bus", "-s", sock],
                                          env=env, stderr=subprocess.DEVNULL))
            wait_for(lambda: os.path.exists(sock))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "pyprocd", "-s", sock, "--syslog",
                 os.path.join(tmp, "log"), "--state-file", os.path.join(tmp, "state.json"),
                 "--confdir", os.path.join(tmp, "config"), "--initd-dir", tmp], env=env,
                stderr=subprocess.DEVNULL))
            holder = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                 ("mount -t tmpfs -o mode=755 tmpfs /run/user && mkdir -m 700 /run/user/0 "
                  "&& echo ready && exec sleep 100000")], stdout=subprocess.PIPE, text=True)
            procs.append(holder)
            holder.stdout.readline()
            enter = ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt", f"--wd={tmp}", "--"]
            call = ["ubus", "-s", sock, "call", "service", "list"]
            cold = [*enter, sys.executable, "-m", "pyprocd", *call]
            warm = [*enter, client, "-U", sys.executable, WARM_CLI, *call]
            wait_for(lambda: subprocess.run(cold, env=env, capture_output=True,
                                            check=False).returncode == 0)
            first = timed(warm, env)
            cold_ms, warm_ms, bare_ms = [], [], []
            for _ in range(calls):
                cold_ms.append(timed(cold, env))
                warm_ms.append(timed(warm, env))
                bare_ms.append(timed([*enter, sys.executable, "-c", "pass"], env))
            subprocess.run([*enter, client, "--kill", "-U", sys.executable, WARM_CLI],
                           env=env, capture_output=True, check=False)
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM if proc is not procs[-1] else signal.SIGKILL)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    cold_med, warm_med = statistics.median(cold_ms), statistics.median(warm_ms)
    return {"calls": calls, "cold_ms": round(cold_med, 1), "warm_ms": round(warm_med, 1),
            "first_ms": round(first, 1), "bare_ms": round(statistics.median(bare_ms), 1),
            "warm_over_cold": round(warm_med / cold_med, 3)}


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
