"""Core benchmarks, each next to a baseline measured in the same run.

- set_each: N `set` calls of one instance each (wall, supervisor CPU), against a
  bare posix_spawn loop of N;
- killall: SIGKILL N instances until all run again, against kill+reap+posix_spawn;
- respawn: exit-to-exec latency with respawn timeout 0, against a bare
  fork/exec/wait loop of the same program (the floor any supervisor pays);
- start: one `set` of N instances until all have exec'd, against a bare loop
  forking and exec'ing the same N processes;
- list: `service list` at N instances (method table only, and encoded to
  blobmsg), against json.dumps of the same reply;
- daemon: RSS/PSS and len(sys.modules) of the real daemon (bus + daemon
  processes; the daemon started by the package's /usr/bin/pyprocd, with cffi)
  at 100 instances, next to `python3 -I -S -c pass`; voluntary
  context switches and CPU time of the daemon over an idle window.
"""

import itertools
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

from bench.measure import bare_python_mem, mem, usage, wait_for
from pyprocd.api.service import call_service
from pyprocd.core.manager import ServiceManager
from pyprocd.loop import Loop
from pyprocd.process.host import Host
from pyprocd.process.logsink import DaemonLog, SyslogSink


class _Quiet:
    def send(self, *args):
        pass


def _manager(state_dir=None):
    """An in-process supervisor. state_dir: with the daemon's crash-survival state
    file there (its default), so every spawn is on record before it may run."""
    loop = Loop()
    log = DaemonLog(sink=_Quiet())
    host = Host(loop, SyslogSink("/nonexistent"), log=log)
    recorder = None
    if state_dir is not None:
        from pyprocd.daemon.state import StateFile

        recorder = StateFile(loop, os.path.join(state_dir, "state.json"))
    mgr = ServiceManager(loop, host, log=log, facts=host, recorder=recorder)
    if recorder is not None:
        recorder.start(mgr.export_state)
    return loop, mgr


def _stop(loop, mgr):
    done = []
    mgr.stop_all(lambda: done.append(True))
    loop.run_until(lambda: done, 120)
    loop.close()


SLEEP = ["/bin/sleep", "100000"]


def _bare_spawn(n):
    return [os.posix_spawn(SLEEP[0], SLEEP, os.environ) for _ in range(n)]


def _bare_reap(pids):
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        os.waitpid(pid, 0)


def bench_set_each(n, state_dir=None):
    """n `set` calls of one instance each, until all have exec'd: wall and the
    supervisor's own CPU, against a bare posix_spawn loop of the same n."""
    loop, mgr = _manager(state_dir)
    c0, t0 = time.process_time(), time.perf_counter()
    for k in range(n):
        call_service(mgr, "set", {"name": f"s{k:04d}", "instances": {"i": {"command": SLEEP}}})
    pids = [s.instances["i"].pid for s in mgr.services.values()]
    loop.run_until(lambda: all(_exec_done(p) for p in pids), 300)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    _stop(loop, mgr)
    c0, t0 = time.process_time(), time.perf_counter()
    bare = _bare_spawn(n)
    bare_wall, bare_cpu = time.perf_counter() - t0, time.process_time() - c0
    _bare_reap(bare)
    return {"services": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "bare_spawn_wall_s": round(bare_wall, 3), "bare_spawn_cpu_s": round(bare_cpu, 3),
            "wall_ratio": round(wall / bare_wall, 2), "cpu_ratio": round(cpu / bare_cpu, 2)}


def bench_killall(n, state_dir=None):
    """SIGKILL n instances (respawn timeout 0) until all n run again, against a bare
    loop that kills, reaps and posix_spawns the same n."""
    loop, mgr = _manager(state_dir)
    call_service(mgr, "set", {"name": "k", "instances": {
        f"i{k:04d}": {"command": SLEEP, "respawn": ["3600", "0", "0"]} for k in range(n)}})
    insts = list(mgr.services["k"].instances.values())
    loop.run_until(lambda: all(_exec_done(i.pid) for i in insts), 300)
    old = {i.pid for i in insts}
    t0 = time.perf_counter()
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    loop.run_until(lambda: all(i.pid and i.pid not in old and _exec_done(i.pid) for i in insts), 300)
    ours = time.perf_counter() - t0
    _stop(loop, mgr)
    bare = _bare_spawn(n)
    t0 = time.perf_counter()
    _bare_reap(bare)
    bare = _bare_spawn(n)
    floor = time.perf_counter() - t0
    _bare_reap(bare)
    return {"instances": n, "all_back_s": round(ours, 3), "bare_kill_reap_spawn_s": round(floor, 3),
            "ratio": round(ours / floor, 2)}


def _exec_done(pid):
    """The child has exec'd once its error pipe is closed (close-on-exec)."""
    try:
        return os.readlink(f"/proc/{pid}/exe") != os.path.realpath(sys.executable)
    except OSError:
        return True  # already gone: it exec'd and exited


def bench_respawn(cycles, state_dir=None):
    loop, mgr = _manager(state_dir)
    stamps = []
    mgr.notify = lambda t, p: stamps.append((t, time.perf_counter()))
    call_service(mgr, "set", {"name": "r", "instances": {"i": {
        "command": ["/bin/true"], "respawn": ["0", "0", "0"]}}})
    loop.run_until(lambda: sum(t == "instance.start" for t, _ in stamps) > cycles, 120)
    call_service(mgr, "delete", {"name": "r"})
    loop.run_until(lambda: not mgr.services, 30)
    loop.close()
    latencies = []
    stamps = [(t, s) for t, s in stamps if t in ("instance.stop", "instance.start")]
    for (t1, s1), (t2, s2) in itertools.pairwise(stamps):
        if t1 == "instance.stop" and t2 == "instance.start":
            latencies.append(s2 - s1)
    # The baseline: fork+exec+wait of the same program, back to back.
    base = []
    for _ in range(cycles):
        t0 = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
        os.waitpid(pid, 0)
        base.append(time.perf_counter() - t0)
    ours = statistics.median(latencies)
    floor = statistics.median(base)
    return {"exit_to_respawn_ms": round(ours * 1000, 3),
            "bare_spawn_wait_ms": round(floor * 1000, 3),
            "ratio": round(ours / floor, 2), "cycles": len(latencies)}


def bench_start(n):
    loop, mgr = _manager()
    t0 = time.perf_counter()
    call_service(mgr, "set", {"name": "s", "instances": {
        f"i{k:04d}": {"command": ["/bin/sleep", "100000"]} for k in range(n)}})
    pids = [i.pid for i in mgr.services["s"].instances.values()]
    loop.run_until(lambda: all(_exec_done(p) for p in pids), 300)
    ours = time.perf_counter() - t0
    from pyprocd.wire import blobmsg

    def server_side():
        """What the daemon does for a `list` request: the reply table, encoded."""
        t = time.perf_counter()
        _, reply = call_service(mgr, "list", {})
        built = time.perf_counter() - t
        blobmsg.encode_table(reply)
        return reply, built, time.perf_counter() - t

    reply, list_s, first_s = server_side()   # every entry built and encoded
    again = [server_side()[2] for _ in range(5)]   # nothing changed since: kept entries
    dumps = []
    for _ in range(5):
        t2 = time.perf_counter()
        json.dumps(reply)
        dumps.append(time.perf_counter() - t2)
    dumps_s, again_s = statistics.median(dumps), statistics.median(again)
    call_service(mgr, "delete", {"name": "s"})
    loop.run_until(lambda: not mgr.services, 120)
    loop.close()
    # Baseline: a bare loop forking the same processes.
    t0 = time.perf_counter()
    bare = [os.posix_spawn("/bin/sleep", ["/bin/sleep", "100000"], os.environ) for _ in range(n)]
    floor = time.perf_counter() - t0
    for pid in bare:
        os.kill(pid, signal.SIGKILL)
    for pid in bare:
        os.waitpid(pid, 0)
    out = {"instances": n, "set_to_all_running_s": round(ours, 3),
           "bare_spawn_s": round(floor, 3), "start_ratio": round(ours / floor, 2),
           "list_ms": round(list_s * 1000, 2), "json_dumps_ms": round(dumps_s * 1000, 2),
           "list_ratio_to_json_dumps": round(list_s / dumps_s, 2),
           "list_plus_blobmsg_encode_ms": round(first_s * 1000, 2),
           "list_encoded_again_ms": round(again_s * 1000, 2),
           "list_encoded_again_ratio_to_json_dumps": round(again_s / dumps_s, 2)}
    return out


def _bytecode_env(tmp):
    """Run from compiled bytecode, as an installed package does.

    Compiling at import costs the daemon ~3 MB of heap it never gives back;
    a pycache prefix keeps the .pyc files out of the source tree.
    """
    env = dict(os.environ, PYTHONPATH=SRC, PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", SRC], env=env,
                   stdout=subprocess.DEVNULL, check=True)
    return env


# The command the OpenWrt package installs (/usr/bin/pyprocd): the daemon is
# measured as a router starts it. `python3 -m pyprocd` would add runpy and
# importlib.util (with contextlib, functools, types, ...) to its memory.
PACKAGE_COMMAND = os.path.join(os.path.dirname(HERE), "openwrt", "files", "usr", "bin", "pyprocd")


def _with_cffi(env):
    """cffi importable under -S, as python3-cffi is on a router: the daemon
    loads it at start (to become a child subreaper); without it the daemon
    would run, smaller, without that. None if this host has no cffi."""
    try:
        import cffi
    except ImportError:
        return None
    env["PYTHONPATH"] += os.pathsep + os.path.dirname(os.path.dirname(cffi.__file__))
    return cffi.__version__


def bench_daemon(instances, idle_s):
    with tempfile.TemporaryDirectory() as tmp:
        env = _bytecode_env(tmp)
        cffi_version = _with_cffi(env)
        sock = os.path.join(tmp, "ubus.sock")
        procs = []
        try:
            bus = subprocess.Popen([sys.executable, "-m", "pyprocd", "bus", "-s", sock], env=env)
            procs.append(bus)
            wait_for(lambda: os.path.exists(sock), 30)
            # -S: no site module, like the bare baseline (site .pth files of
            # this host would otherwise be counted as the daemon's memory).
            # its own state file, confdir and init.d: nothing of the host's is read or written
            os.mkdir(os.path.join(tmp, "config"))
            daemon = subprocess.Popen([sys.executable, "-S", PACKAGE_COMMAND, "-s", sock,
                                       "--syslog", os.path.join(tmp, "nolog"),
                                       "--state-file", os.path.join(tmp, "state.json"),
                                       "--confdir", os.path.join(tmp, "config"),
                                       "--initd-dir", os.path.join(tmp, "config")], env=env,
                                      stderr=subprocess.DEVNULL)
            procs.append(daemon)
            ubus = [sys.executable, "-m", "pyprocd", "ubus", "-s", sock]
            wait_for(lambda: subprocess.run(ubus + ["list", "service"], env=env,
                                             capture_output=True, check=False).returncode == 0, 30)
            msg = {"name": "m", "instances": {
                f"i{k}": {"command": ["/bin/sleep", "100000"], "respawn": []} for k in range(instances)}}
            subprocess.run(ubus + ["call", "service", "set", json.dumps(msg)], env=env, check=True,
                           capture_output=True)

            def all_running():
                out = subprocess.run(ubus + ["call", "service", "list", '{"name":"m"}'], env=env,
                                     capture_output=True, text=True, check=False).stdout
                return out and sum(i.get("running", False) for i in
                                   json.loads(out)["m"]["instances"].values()) == instances
            wait_for(all_running, 120)
            time.sleep(1.0)  # let start-up work settle before the idle window
            before = usage(daemon.pid)
            time.sleep(idle_s)
            after = usage(daemon.pid)
            rss, pss = mem(daemon.pid)
            bus_rss, bus_pss = mem(bus.pid)
            nmod = _daemon_modules(env)
            subprocess.run(ubus + ["call", "service", "delete", '{"name":"m"}'], env=env,
                           capture_output=True, check=False)
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    bare_rss, bare_pss = bare_python_mem()
    return {"instances": instances, "daemon_rss_kb": rss, "daemon_pss_kb": pss,
            "bare_python_rss_kb": bare_rss, "bare_python_pss_kb": bare_pss,
            "pss_over_bare_kb": (pss - bare_pss) if pss and bare_pss else None,
            "daemon_command": "python3 -S /usr/bin/pyprocd", "daemon_cffi": cffi_version,
            "bus_rss_kb": bus_rss, "bus_pss_kb": bus_pss, "daemon_modules": nmod,
            "idle_seconds": idle_s,
            "idle_voluntary_wakeups": after["voluntary_switches"] - before["voluntary_switches"],
            "idle_cpu_s": round((after["cpu_ns"] - before["cpu_ns"]) / 1e9, 6)}


def _daemon_modules(env):
    """len(sys.modules) after the daemon's own start-up imports (same code path, no bus needed)."""
    code = ("import sys; import pyprocd.daemon.main as m; "
            "m.build_daemon(m.parse_args(['-s', '/nonexistent'])); print(len(sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env=env, check=False)
    bare = subprocess.run([sys.executable, "-I", "-S", "-c", "import sys; print(len(sys.modules))"],
                          capture_output=True, text=True, check=False)
    try:
        return {"daemon": int(out.stdout), "bare_python": int(bare.stdout)}
    except ValueError:
        return None


def run(quick):
    # "_state_file": the same with the daemon's default crash-survival state file,
    # which has every process on record before it may run (an intent line, then
    # posix_spawn, then the spawn line).
    with tempfile.TemporaryDirectory() as state_dir:
        return {
            "set_each": bench_set_each(50 if quick else 200),
            "set_each_state_file": bench_set_each(50 if quick else 200, state_dir),
            "respawn": bench_respawn(50 if quick else 300),
            "respawn_state_file": bench_respawn(50 if quick else 300, state_dir),
            "killall": bench_killall(30 if quick else 100),
            "killall_state_file": bench_killall(30 if quick else 100, state_dir),
            **_rest(quick),
        }


def _rest(quick):
    return {
        "start_and_list": bench_start(100 if quick else 1000),
        "daemon": bench_daemon(20 if quick else 100, 2.0 if quick else 10.0),
    }


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
