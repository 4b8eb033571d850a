"""Warm (zygote) starts against cold ones, side by side, through the real daemon.

Two services run the same Python script, one cold and one with the `zygote`
key. Everything a supervisor and a service can see is compared: the `list`
entry, exit codes and signals, respawn and crash-loop give-up, limits, nice,
uid/gid/groups, environment, argv, signal dispositions, and the log lines with
their ident. A warm process is told apart from outside by its command line
(a fork of the zygote keeps the zygote's).
"""

import json
import os
import re
import shutil
import signal
import sys
import tempfile

import pytest

from tests.conftest import IS_ROOT
from tests.core.harness import SyslogReader
from tests.e2e.stack import Stack, wait_for

PRELOAD = ["json", "socket", "asyncio"]
LINE = re.compile(r"^<\d+>.{15} \S+\[(\d+)\]: (.*)$", re.DOTALL)
SCRIPT = r"""
import json, os, resource, signal, sys, time
info = {"argv": sys.argv, "env": dict(os.environ), "uid": os.getuid(), "gid": os.getgid(),
        "groups": sorted(os.getgroups()), "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "nice": os.nice(0), "ppid": os.getppid(), "name": __name__, "path0": sys.path[0],
        "sigint": repr(signal.getsignal(signal.SIGINT)),
        "sigpipe": repr(signal.getsignal(signal.SIGPIPE)),
        "sigterm": repr(signal.getsignal(signal.SIGTERM)), "stdin": sys.stdin.read()}
print("INFO " + json.dumps(info), flush=True)
print("to stderr", file=sys.stderr, flush=True)
mode = sys.argv[1]
if mode == "exit":
    sys.exit(int(sys.argv[2]))
if mode == "raise":
    raise RuntimeError("boom")
time.sleep(1000)
"""


# As root the services run as `nobody`, who needs an interpreter and a script it may read:
# the system's python3 (this one may live under /root) and a world-readable folder.
SYSTEM_PYTHON = "/usr/bin/python3"
AS_NOBODY = IS_ROOT and os.access(SYSTEM_PYTHON, os.X_OK)
PYTHON = SYSTEM_PYTHON if AS_NOBODY else sys.executable


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    reader = SyslogReader(s.syslog)
    s.reader = reader
    s.start()
    s.scripts = tempfile.mkdtemp(prefix="pyprocd-zygote-test-")
    os.chmod(s.scripts, 0o755)
    with open(os.path.join(s.scripts, "service.py"), "w") as f:
        f.write(SCRIPT)
    yield s
    s.close()
    reader.close()
    shutil.rmtree(s.scripts)


def instance(stack, service, verbose=False):
    stack.reader.drain()  # keep the log socket empty: a full one would slow the daemon
    status, reply = stack.call("list", {"name": service, "verbose": verbose})
    assert status == 0, status
    return reply[service]["instances"]["i"]


def is_warm(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"pyprocd.process.zygote" in f.read()
    except OSError:
        return False


def service(stack, name, mode_args, warm, **extra):
    table = {"command": [PYTHON, os.path.join(stack.scripts, "service.py"), *mode_args],
             "stdout": True, "stderr": True, "respawn": ["3600", "0", "0"], "term_timeout": 5,
             **extra}
    if warm:
        table["zygote"] = PRELOAD
    assert stack.call("set", {"name": name, "instances": {"i": table}})[0] == 0


def until_warm(stack, name):
    """The first start of an identity is cold (its zygote warms up): respawn until warm."""
    def warm_now():
        inst = instance(stack, name)
        if inst.get("running") and is_warm(inst["pid"]):
            return True
        if inst.get("running"):
            os.kill(inst["pid"], signal.SIGKILL)
        return False
    assert wait_for(warm_now, 120, 0.2), "the zygote never served a start"


def info_lines(stack, pid):
    """The INFO record and every line a process logged, by its ident."""
    ident = f"{os.path.basename(PYTHON)}[{pid}]"
    messages = [m for m in stack.reader.drain() if f" {ident}: " in m]
    infos = [json.loads(m.split("INFO ", 1)[1]) for m in messages if "INFO {" in m]
    return (infos[0] if infos else None), messages


def test_warm_and_cold_starts_look_the_same(stack):
    extra = {"limits": {"nofile": "123 456"}, "nice": 5, "env": {"FOO": "bar"}}
    if AS_NOBODY:
        extra["user"] = "nobody"
    service(stack, "cold", ["sleep"], False, **extra)
    service(stack, "warm", ["sleep"], True, **extra)
    until_warm(stack, "warm")
    cold, warm = instance(stack, "cold"), instance(stack, "warm")
    assert not is_warm(cold["pid"]) and is_warm(warm["pid"])
    strip = {"pid", "zygote", "command"}
    assert {k: v for k, v in cold.items() if k not in strip} == {
        k: v for k, v in warm.items() if k not in strip}
    assert wait_for(lambda: info_lines(stack, warm["pid"])[0] is not None, 60, 0.1)
    cold_info, cold_lines = info_lines(stack, cold["pid"])
    warm_info, warm_lines = info_lines(stack, warm["pid"])
    daemon = stack.daemon.pid
    assert cold_info["ppid"] == warm_info["ppid"] == daemon  # the daemon's own children
    for record in (cold_info, warm_info):
        record.pop("ppid")
    assert warm_info == cold_info
    assert warm_info["nofile"] == [123, 456] and warm_info["nice"] == 5
    assert warm_info["env"]["FOO"] == "bar" and "PYPROCD_ZYGOTE_PATH" not in warm_info["env"]
    assert warm_info["name"] == "__main__"
    # the same kinds of lines, under the same kind of ident, at the same priorities
    assert [m.split(": ", 1)[1][:4] for m in cold_lines] == [
        m.split(": ", 1)[1][:4] for m in warm_lines]
    assert [m[:4] for m in cold_lines] == [m[:4] for m in warm_lines]


def test_signals_exit_codes_and_crash_loops_match(stack):
    service(stack, "warmup", ["sleep"], True)
    until_warm(stack, "warmup")
    give_up = {"respawn": ["3600", "0", "2"]}
    for name, args in (("exit", ["exit", "3"]), ("raise", ["raise"])):
        service(stack, f"cold-{name}", args, False, **give_up)
        service(stack, f"warm-{name}", args, True, **give_up)
    for name in ("exit", "raise"):
        for kind in ("cold", "warm"):
            assert wait_for(lambda kind=kind, name=name: instance(
                stack, f"{kind}-{name}", True).get("failed"), 120, 0.1)
        cold = instance(stack, f"cold-{name}", True)
        warm = instance(stack, f"warm-{name}", True)
        shape = [(e["exit_code"], e.get("signal")) for e in cold["exits"]]
        assert shape == [(e["exit_code"], e.get("signal")) for e in warm["exits"]], name
        assert shape[-1][0] == (3 if name == "exit" else 1)
    # the same traceback reaches the log from both, without the zygote's own frames
    def tracebacks(kind):
        pids = {str(e["pid"]) for e in instance(stack, f"{kind}-raise", True)["exits"]}
        by_pid = {pid: [] for pid in pids}
        for m in filter(None, (LINE.match(m) for m in stack.reader.drain())):
            if m.group(1) in pids and not m.group(2).startswith(("INFO", "to stderr")):
                by_pid[m.group(1)].append(m.group(2))
        return sorted(by_pid.values())  # each process's lines; processes in any order
    assert wait_for(lambda: tracebacks("cold") and tracebacks("cold") == tracebacks("warm"), 60,
                    0.1), "\n".join(["cold:", *map(repr, tracebacks("cold")), "warm:",
                                     *map(repr, tracebacks("warm"))])
    assert all(lines[-1] == "RuntimeError: boom" for lines in tracebacks("warm"))
    # signals go to the service's own process, which dies of them as a cold one does
    service(stack, "cold-sig", ["sleep"], False, respawn=["3600", "0", "1"])
    service(stack, "warm-sig", ["sleep"], True, respawn=["3600", "0", "1"])
    for kind in ("cold", "warm"):
        name = f"{kind}-sig"
        assert wait_for(lambda name=name: instance(stack, name).get("running"), 60, 0.1)
        pid = instance(stack, name)["pid"]
        # past the interpreter's start-up (a cold one would die of it differently there)
        assert wait_for(lambda pid=pid: info_lines(stack, pid)[0] is not None, 60, 0.1)
        assert stack.call("signal", {"name": name, "signal": signal.SIGINT})[0] == 0
        assert wait_for(lambda name=name, pid=pid: instance(stack, name, True).get("exits") and
                        instance(stack, name, True)["exits"][-1]["pid"] == pid, 60, 0.1)
    cold_exit = instance(stack, "cold-sig", True)["exits"][-1]
    warm_exit = instance(stack, "warm-sig", True)["exits"][-1]
    assert (cold_exit["exit_code"], cold_exit.get("signal")) == (
        warm_exit["exit_code"], warm_exit.get("signal"))


def test_a_dead_zygote_means_cold_starts_then_a_new_zygote(stack):
    service(stack, "warm", ["sleep"], True)
    until_warm(stack, "warm")
    zygotes = [p for p in children(stack.daemon.pid) if is_warm(p)
               and p != instance(stack, "warm")["pid"]]
    assert len(zygotes) == 1, zygotes
    os.kill(zygotes[0], signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists(f"/proc/{zygotes[0]}/cmdline")
                    or not is_warm(zygotes[0]), 60, 0.1)
    pid = instance(stack, "warm")["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: instance(stack, "warm").get("running")
                    and instance(stack, "warm")["pid"] != pid, 60, 0.1)
    until_warm(stack, "warm")  # a new zygote took over


def test_bad_zygote_values(stack):
    assert stack.call("set", {"name": "bad", "instances": {"i": {
        "command": [PYTHON, "x.py"], "zygote": ["json", "no such module"]}}})[0] == 0
    assert not instance(stack, "bad").get("running")
    assert any("zygote" in e for e in instance(stack, "bad").get("errors", []))
    # a value of another type counts as absent, as for every key (procd's policy)
    service(stack, "string", ["sleep"], False, zygote="json")
    assert wait_for(lambda: instance(stack, "string").get("running"), 60, 0.1)
    assert "zygote" not in instance(stack, "string", True)
    # not a python command: runs, cold
    assert stack.call("set", {"name": "shell", "instances": {"i": {
        "command": ["/bin/sleep", "100"], "zygote": ["json"]}}})[0] == 0
    assert wait_for(lambda: instance(stack, "shell").get("running"), 60, 0.1)
    assert not is_warm(instance(stack, "shell")["pid"])


def children(pid):
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids += [int(k) for k in f.read().split()]
    return kids

