"""Upgrades: what the daemon of e510d50 (state format 1) left behind is taken
over by today's daemon with every instance re-adopted (tests/daemon/golden)."""

import json
import os
import subprocess
from pathlib import Path

from pyprocd.core.manager import ServiceManager
from pyprocd.daemon import state as state_mod
from pyprocd.daemon.survival import Survival
from pyprocd.loop import Loop
from tests.daemon.lifecycle_helpers import Mini, wait_for

GOLDEN = Path(__file__).resolve().parent / "golden"


def _instances(doc):
    for svc in doc["manager"]["services"]:
        for entry in svc["instances"]:
            yield svc["name"], entry


def _sleeper(procs, with_pipes=False):
    """A process of ours standing in for one the old daemon ran."""
    out = subprocess.PIPE if with_pipes else subprocess.DEVNULL
    proc = subprocess.Popen(["sleep", "1000"], stdout=out, stderr=out)
    procs.track(proc.pid)
    return proc


def test_format_1_state_file_is_taken_over(procs, tmp_path):
    doc = json.loads((GOLDEN / "state-v1.json").read_bytes())
    assert doc["version"] == 1 and "format" not in doc  # really the old layout
    stand_ins = {}
    for service, entry in _instances(doc):
        if not entry["pid"]:
            continue
        pipes = bool(entry["proc"]["pipes"])
        proc = _sleeper(procs, with_pipes=pipes)
        stand_ins[(service, entry["name"])] = proc
        entry["pid"] = proc.pid
        entry["proc"]["start"] = state_mod.proc_start_time(proc.pid)
        for pipe in entry["proc"]["pipes"]:
            stream = proc.stdout if pipe["child_fd"] == 1 else proc.stderr
            pipe["ino"] = os.fstat(stream.fileno()).st_ino
            pipe["ident"] = f"sleep[{proc.pid}]"
    assert len(stand_ins) == 3
    mini = Mini(procs, tmp_path)
    mini.state.write_text(json.dumps(doc))
    mini.start()
    assert any("took back 3 running instances" in line for line in mini.lines())

    web = mini.instances("web", verbose=True)
    for name in ("main", "helper", "grouped"):
        assert web[name]["running"] and web[name]["pid"] == stand_ins[("web", name)].pid
    assert web["helper"]["watchdog"] == {"mode": 1, "timeout": 900}  # set by the method
    assert web["main"]["data"] == {"role": "primary"}  # set by set_data
    _status, listing = mini.call("list", {"verbose": True})
    assert listing["manual"]["autostart"] is False
    assert listing["manual"]["instances"]["off"]["running"] is False
    assert listing["broken"]["instances"]["b"]["failed"] is True
    assert listing["web"]["data"] == {"port": 80} and listing["web"]["triggers"]
    crashy = listing["crashy"]["instances"]["c"]
    assert not crashy["running"] and crashy["exits"]  # still waiting out its 3000 s
    assert mini.call("validate", {"package": "web"})[1] == {"web": {"main": {"port": "port"}}}

    # Taken over for real: an exit is noticed and respawn applies.
    main = stand_ins[("web", "main")]
    main.kill()
    main.wait()
    wait_for(lambda: mini.pids("web")["main"] not in (None, main.pid), what="respawn")
    # The state file is rewritten in today's format.
    wait_for(lambda: json.loads(mini.state.read_text()).get("format") == state_mod.STATE_FORMAT,
             what="state file in the current format")
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
    for proc in stand_ins.values():
        proc.wait(timeout=60)
        procs.pids.discard(proc.pid)


class _Life:
    pidfile = None

    def __init__(self, handed_over):
        self.handed_over = handed_over

        class opts:
            state_file = None
        self.opts = opts


class _Spawner:
    def spawn(self, spec, on_exit, on_forked=None, announce=None):
        raise AssertionError("a take-over starts nothing")

    def kill(self, pid, sig, group=False):
        return 0


class _Sink:
    def send(self, priority, ident, message):
        pass


def test_format_1_reexec_handover_is_taken_over(procs):
    from pyprocd.daemon import reexec

    doc = json.loads((GOLDEN / "handover-v1.json").read_bytes())
    assert doc["format"] == 1
    stand_ins = {}
    pipes = []
    for service, entry in _instances(doc):
        if not entry["pid"]:
            continue
        proc = _sleeper(procs)
        stand_ins[entry["name"]] = proc
        entry["pid"] = proc.pid
        entry["proc"]["start"] = state_mod.proc_start_time(proc.pid)
        for log in entry["proc"]["logs"]:
            r, w = os.pipe()
            pipes.append(w)
            log["fd"] = r
    # Through the same reader the re-exec'd daemon uses (memfd -> receive).
    fd = os.memfd_create("golden")
    os.write(fd, json.dumps(doc).encode())
    handed = reexec.receive(fd)
    loop = Loop()
    mgr = ServiceManager(loop, _Spawner())
    log = []
    survival = Survival(loop, mgr, _Life(handed), sink=_Sink(), log=lambda m, p=0: log.append(m))
    try:
        assert survival.restore() == (2, 0)
        web = mgr.services["web"].instances
        assert {n: i.pid for n, i in web.items() if i.running} == \
            {n: p.pid for n, p in stand_ins.items()}
        assert len(web["main"].proc.loggers) == 2  # its log pipes are read again
        assert web["helper"].wd_mode == 1
        assert mgr.services["manual"].autostart is False
        assert mgr.services["crashy"].instances["c"].respawn_timer is not None
        assert any("re-exec done: kept 2 running instances" in line for line in log)
    finally:
        for proc in stand_ins.values():
            proc.kill()
            proc.wait()
            procs.pids.discard(proc.pid)
            loop.unwatch_child(proc.pid)
        for inst in [i for s in mgr.services.values() for i in s.instances.values()]:
            for lg in getattr(inst.proc, "loggers", ()):
                if lg.fd is not None:
                    loop.remove_reader(lg.fd)
                    os.close(lg.fd)
            if inst.respawn_timer is not None:
                inst.respawn_timer.cancel()
        for w in pipes:
            os.close(w)
        loop.close()


OLD_COMMIT = "e510d50"  # the last daemon of state format 1
REPO = Path(__file__).resolve().parents[2]


class _InstalledMini(Mini):
    """The mini daemon run from an installed copy (app/), as a package upgrade
    replaces it: files swapped under the running daemon, then a re-exec."""

    def __init__(self, procs, tmp_path, app):
        super().__init__(procs, tmp_path)
        self.app = app

    def args(self, *extra):
        return [a if a != MINI_PATH else str(self.app / "mini_daemon.py")
                for a in super().args(*extra)]


MINI_PATH = str(Path(__file__).resolve().parent / "mini_daemon.py")


def _install(app, source_root, commit=None):
    """Put pyprocd and the mini daemon into app/ from a commit (or the tree)."""
    import shutil

    if app.exists():
        shutil.rmtree(app)
    app.mkdir()
    if commit is None:
        shutil.copytree(source_root / "src" / "pyprocd", app / "pyprocd",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(source_root / "tests" / "daemon" / "mini_daemon.py", app)
        return
    archive = subprocess.run(
        ["git", "-C", str(source_root), "archive", commit, "src/pyprocd",
         "tests/lifecycle/mini_daemon.py"],  # where the old commit kept it
        capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(app)], input=archive, check=True)
    (app / "src" / "pyprocd").rename(app / "pyprocd")
    (app / "tests" / "lifecycle" / "mini_daemon.py").rename(app / "mini_daemon.py")


def test_reexec_from_the_format_1_daemon_keeps_every_instance(procs, tmp_path):
    import shutil

    import pytest

    if shutil.which("git") is None or subprocess.run(
            ["git", "-C", str(REPO), "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"],
            capture_output=True, check=False).returncode != 0:
        pytest.skip(f"no git history with {OLD_COMMIT} here (the golden blob test covers it)")
    app = tmp_path / "app"
    _install(app, REPO, OLD_COMMIT)
    mini = _InstalledMini(procs, tmp_path, app)
    env = dict(os.environ, PYTHONPATH=str(app))
    daemon = mini.start(env=env)
    assert mini.call("set", {"name": "web", "instances": {
        "a": {"command": ["sleep", "1000"], "respawn": ["3600", "0", "5"]},
        "b": {"command": ["sh", "-c", "while :; do echo tick; sleep 0.05; done"],
              "stdout": True},
        "c": {"command": ["sleep", "1001"]}}})[0] == 0
    before = wait_for(lambda: (p := mini.pids("web")) and all(p.values()) and p,
                      what="instances running")
    for pid in before.values():
        procs.track(pid)

    _install(app, REPO)  # the upgrade: today's files under the running daemon
    assert mini.call("reexec", {})[0] == 0
    wait_for(lambda: any("re-exec done: kept 3 running instances" in line
                         for line in mini.lines()), what="the new code's take-over")
    assert mini.call("_pid")[1]["pid"] == daemon
    assert mini.pids("web") == before

    # Supervised by the new code: output still read, exits still handled.
    ticks = len([line for line in mini.lines() if line.endswith(": tick")])
    wait_for(lambda: len([line for line in mini.lines() if line.endswith(": tick")]) > ticks + 3,
             what="output after the re-exec")
    os.kill(before["a"], 9)
    wait_for(lambda: mini.pids("web")["a"] not in (None, before["a"]), what="respawn of a")
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
