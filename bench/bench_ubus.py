"""ubus benchmarks: call round trips, `service list` at 1000 instances, bus memory.

* call_roundtrip: a client calls an echo object owned by another client,
  both on pyprocd's loop in this process, through `pyprocd bus` (a separate
  process): the latency a ubus method call adds, bus hop included.
* service_list: the daemon (separate process) with N running instances
  (/bin/sleep), `service list` (plain and verbose) timed from the client
  library, and the `ubus call service list` command as a user runs it (one
  process each time: Python start-up included).
* bus_memory: RSS/PSS of the bus process idle with two clients, and after
  serving the big listings; a bare `python3 -I -S` measured in the same run.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
for path in (SRC, os.path.dirname(HERE)):  # pyprocd, and `bench.*` when run as a script
    if path not in sys.path:
        sys.path.insert(0, path)

from bench.measure import bare_python_mem, mem, wait_for
from pyprocd.bus.broker import Broker
from pyprocd.bus.client import BlockingUbus, UbusClient, UbusObject
from pyprocd.loop import Loop


def _summary(samples_s):
    samples = sorted(samples_s)
    return {"n": len(samples), "median_us": round(statistics.median(samples) * 1e6, 1),
            "p95_us": round(samples[int(len(samples) * 0.95) - 1] * 1e6, 1),
            "min_us": round(samples[0] * 1e6, 1)}


def _bytecode_env(tmp):
    """Run from compiled bytecode, as an installed package does.

    With PYTHONDONTWRITEBYTECODE (set on this host) every start compiles the
    sources, and the compiler's heap (~2 MB for the bus) stays in RSS.
    """
    env = dict(os.environ, PYTHONPATH=SRC, PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", SRC], env=env,
                   stdout=subprocess.DEVNULL, check=True)
    return env


class Processes:
    def __init__(self, tmp):
        self.tmp = tmp
        self.socket = os.path.join(tmp, "ubus.sock")
        self.env = _bytecode_env(tmp)
        self.procs = []

    def start(self, *argv, **kwargs):
        # -S: no site module, like the bare baseline (this host's .pth files
        # would otherwise count as our memory)
        proc = subprocess.Popen([sys.executable, "-S", "-m", "pyprocd", *argv], env=self.env,
                                **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _echo_roundtrips(loop, socket_path, calls):
    """Two clients on `loop`: one owns an echo object, the other calls it `calls` times."""
    owner = UbusClient(loop, socket_path, reconnect=False)
    caller = UbusClient(loop, socket_path, reconnect=False)
    echo = UbusObject("bench.echo", {"echo": ({"n": 5}, lambda inv, data: inv.reply(data))})
    owner.add_object(echo)
    owner.start()
    caller.start()
    loop.run_until(lambda: echo.id and caller.connected, 30)
    samples = []
    for n in range(calls):
        done = []
        start = time.perf_counter()
        caller.invoke(echo.id, "echo", {"n": n}, lambda *a, d=done: d.append(a), timeout=30)
        while not done:
            loop.run_once()
        samples.append(time.perf_counter() - start)
        assert done[0] == (0, [{"n": n}])
    owner.close()
    caller.close()
    return _summary(samples[len(samples) // 10:])  # drop the warm-up tenth


def bench_call_roundtrip(socket_path, calls):
    loop = Loop()
    try:
        return _echo_roundtrips(loop, socket_path, calls)
    finally:
        loop.close()


def bench_in_process_bus(calls):
    """Same round trip with the bus in this process too: the pure Python cost, no scheduling."""
    with tempfile.TemporaryDirectory() as tmp:
        loop = Loop()
        path = os.path.join(tmp, "ubus.sock")
        broker = Broker(loop, path)
        summary = _echo_roundtrips(loop, path, calls)
        broker.close()
        loop.close()
    return summary


def bench_service_list(procs, instances, reps):
    msg = {"name": "bench", "instances": {
        f"i{k:04d}": {"command": ["/bin/sleep", "100000"]} for k in range(instances)}}
    with BlockingUbus(procs.socket, timeout=120) as bus:
        status, _ = bus.call("service", "set", msg)
        assert status == 0, status

        def all_running():
            status, replies = bus.call("service", "list", {"name": "bench"})
            insts = replies[0]["bench"]["instances"] if status == 0 and replies else {}
            return sum(1 for i in insts.values() if i.get("running")) == instances

        wait_for(all_running, 300)
        timings = {}
        for label, args in (("plain", {}), ("verbose", {"verbose": True})):
            samples = []
            for _ in range(reps):
                start = time.perf_counter()
                status, replies = bus.call("service", "list", args)
                samples.append(time.perf_counter() - start)
                assert status == 0
            timings[label] = round(statistics.median(samples) * 1000, 2)
        reply_bytes = len(json.dumps(replies[0]))
    cli = [sys.executable, "-m", "pyprocd", "ubus", "-s", procs.socket, "call", "service", "list"]
    cli_samples = []
    for _ in range(max(3, reps // 3)):
        start = time.perf_counter()
        subprocess.run(cli, env=procs.env, stdout=subprocess.DEVNULL, check=True)
        cli_samples.append(time.perf_counter() - start)
    return {"instances": instances, "list_ms": timings["plain"],
            "list_verbose_ms": timings["verbose"], "reply_json_bytes": reply_bytes,
            "cli_process_ms": round(statistics.median(cli_samples) * 1000, 1)}


def run(quick):
    instances = 100 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        procs = Processes(tmp)
        try:
            bus = procs.start("bus", "-s", procs.socket)
            wait_for(lambda: os.path.exists(procs.socket), 30)
            idle = mem(bus.pid)
            roundtrip = bench_call_roundtrip(procs.socket, 300 if quick else 3000)
            procs.start("-s", procs.socket, "--syslog", os.path.join(tmp, "nolog"),
                        "--state-file", "none", "--confdir", tmp, "--initd-dir", tmp,
                        stderr=subprocess.DEVNULL)

            def listed():
                try:
                    with BlockingUbus(procs.socket, timeout=5) as bus_client:
                        return bool(bus_client.lookup("service")[1])
                except OSError:
                    return False

            wait_for(listed, 60)
            with_daemon = mem(bus.pid)
            listing = bench_service_list(procs, instances, 5 if quick else 15)
            after = mem(bus.pid)
        finally:
            procs.stop()
    bare = bare_python_mem()
    return {
        "call_roundtrip": roundtrip,
        "call_roundtrip_in_process_bus": bench_in_process_bus(300 if quick else 3000),
        "service_list": listing,
        "bus_memory_kb": {"idle_rss": idle[0], "idle_pss": idle[1],
                          "with_daemon_rss": with_daemon[0], "with_daemon_pss": with_daemon[1],
                          "after_big_lists_rss": after[0], "after_big_lists_pss": after[1],
                          "bare_python_rss": bare[0], "bare_python_pss": bare[1]},
    }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
