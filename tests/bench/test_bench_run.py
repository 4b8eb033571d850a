"""`python3 -m bench` end to end, with tiny numbers, on whichever peers are installed.

What users rely on: the run reports every available peer's figures, one
failing peer or module is reported without stopping the rest, and no process
the benchmark started outlives it, whether it finishes, fails or gets Ctrl-C.
"""

import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest

from bench import __main__ as cli
from bench.peers import harness, procfs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--services", "3", "--kill", "3", "--idle", "0.5", "--reps", "1",
        "--respawns", "1", "--settle", "0.1", "--no-install"]
# the run's work dirs hold unix sockets: keep the base path short
SHORT_BASE = "/tmp"


def available_peers():
    return [p.name for p in harness.PEERS if not p.missing()]


def fast_peer():
    """One installed peer, the quickest first; skip when none is installed."""
    for name in ("s6", "runit", "supervisord", "circus", "pyprocd"):
        if name in available_peers():
            return name
    pytest.skip("no supervisor installed (pip: supervisor, circus; apt: runit, s6)")


@pytest.fixture
def base(tmp_path_factory):
    """A short, private parent dir for the run; every process we start mentions it."""
    import tempfile

    path = tempfile.mkdtemp(prefix="pb-", dir=SHORT_BASE)
    yield path
    leftovers = procfs.processes_mentioning(path)
    for pid in leftovers:  # only if the test failed: don't leak into other tests
        os.kill(pid, signal.SIGKILL)
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    assert leftovers == [], f"processes left behind: {leftovers}"


def bench(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def finish(proc, timeout=240):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def load(path):
    with open(path) as f:
        return json.load(f)


def my_children():
    return set(procfs.children(os.getpid()))


def test_tiny_run_measures_every_available_peer_and_leaves_nothing(base):
    peers = available_peers()
    if not peers:
        pytest.skip("no supervisor installed (pip: supervisor, circus; apt: runit, s6)")
    before = my_children()
    out_json = os.path.join(base, "r.json")
    code, out, err = finish(bench(["--only", "peers", *TINY, "--tmpdir", base,
                                   "--json", out_json]))
    assert code == 0, err
    result = load(out_json)["peers"]
    for name in peers:
        peer = result["peers"][name]
        assert peer["available"], peer
        assert name in out  # the table names it
        if name == "pyprocd" and peer["errors"]:
            # pyprocd's own failures are the daemon's tests' business (and
            # test_bench_peers[pyprocd]'s); here: reported, not a crash
            assert "error: pyprocd" in out
            continue
        assert peer["errors"] == [], peer["errors"]
        for key in ("start_s", "killall_s", "respawn_ms", "rss_kb", "pss_kb"):
            assert peer["metrics"][key]["median"] > 0, (name, key)
    assert procfs.processes_mentioning(base) == []
    assert my_children() <= before
    assert not [d for d in os.listdir(base) if d.startswith("pyprocd-bench-")]  # temp dir gone


def test_ctrl_c_stops_every_started_process(base):
    peer = fast_peer()
    proc = bench(["--only", peer, *TINY, "--idle", "600", "--tmpdir", base,
                  "--json", os.path.join(base, "r.json")])
    try:
        # wait until the idle scenario's services run, then interrupt
        deadline = time.monotonic() + 120
        while len(running_sleeps(base)) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "services never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        code, _, err = finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 130, err
    assert "interrupted" in err
    assert procfs.processes_mentioning(base) == []
    with open(os.path.join(base, "r.json")) as f:
        assert json.load(f)["interrupted"] is True  # written, and marked as incomplete


def test_ctrl_c_keeps_what_was_measured(base):
    """An interrupted run still writes the modules it finished."""
    out_json = os.path.join(base, "r.json")
    with open(os.path.join(base, "err"), "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bench", "--quick", "--only", "ubus",
                                 "wire", "--json", out_json], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        deadline = time.monotonic() + 300
        def said():
            with open(os.path.join(base, "err")) as f:
                return f.read()

        while "module wire" not in said():
            assert proc.poll() is None, said()
            assert time.monotonic() < deadline, "the ubus module never finished"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(out_json) as f:
        result = json.load(f)
    assert result["interrupted"] is True
    assert result["modules"]["ubus"]["ok"], result["modules"]["ubus"]


def running_sleeps(base):
    return [p for p in procfs.processes_mentioning(base)
            if (procfs.cmdline(p) or ("",))[0].endswith("/bin/sleep")]


def test_a_failing_scenario_is_reported_and_cleaned_up(base):
    peer = fast_peer()
    out_json = os.path.join(base, "r.json")
    env = dict(os.environ, **{harness.FAIL_ENV: "steady"})
    code, out, err = finish(bench(["--only", peer, *TINY, "--tmpdir", base,
                                   "--json", out_json], env=env))
    assert code == 0, err
    result = load(out_json)["peers"]["peers"][peer]
    assert any("steady" in e and "on purpose" in e for e in result["errors"])
    assert result["metrics"]["start_s"]["median"] > 0  # the other scenarios still ran
    assert result["metrics"]["killall_s"]["median"] is None
    assert "error:" in out
    assert procfs.processes_mentioning(base) == []


def test_unknown_only_name_is_refused():
    code, _, err = finish(bench(["--only", "nosuchthing"]), timeout=60)
    assert code == 2
    assert "unknown name" in err


def test_a_failing_module_is_reported_not_fatal(monkeypatch):
    from bench import _module

    broken = types.ModuleType("bench.bench_broken")
    broken.run = lambda quick: 1 / 0
    good = types.ModuleType("bench.bench_good")
    good.run = lambda quick: {"quick": quick, "ops_per_s": 12.5}
    monkeypatch.setitem(sys.modules, "bench.bench_broken", broken)
    monkeypatch.setitem(sys.modules, "bench.bench_good", good)
    failed = _module.run_in_process("broken", quick=True)
    assert failed["ok"] is False and "ZeroDivisionError" in failed["error"]
    assert _module.run_in_process("good", quick=True) == {
        "ok": True, "result": {"quick": True, "ops_per_s": 12.5}}


def test_modules_run_in_a_child_process_whose_failure_is_reported():
    outcome = cli.run_module("absent", quick=True, timeout=120)
    assert outcome["ok"] is False
    assert "No module named 'bench.bench_absent'" in outcome["error"]


def test_core_rows_put_each_figure_next_to_its_same_run_baseline(tmp_path, capsys):
    from bench import report

    core = {
        "set_each": {"services": 200, "wall_s": 0.6, "cpu_s": 0.09, "bare_spawn_wall_s": 0.3,
                     "bare_spawn_cpu_s": 0.03},
        "respawn_state_file": {"exit_to_respawn_ms": 2.0, "bare_spawn_wait_ms": 1.0},
        "killall": {"instances": 100, "all_back_s": 0.5, "bare_kill_reap_spawn_s": 0.25},
        "start_and_list": {"instances": 1000, "list_plus_blobmsg_encode_ms": 12.0,
                           "list_encoded_again_ms": 0.5, "json_dumps_ms": 2.0},
        "daemon": {"instances": 100, "daemon_pss_kb": 6000, "bare_python_pss_kb": 3000,
                   "pss_over_bare_kb": 3000, "idle_seconds": 10.0, "idle_voluntary_wakeups": 0},
    }
    rows = {row[0]: row[1:] for row in report.core_rows(core)}
    assert rows["start 200 (one set each), supervisor CPU / bare posix_spawn"] == ["90.0 ms", "30.0 ms", "3"]
    assert rows["respawn gap exit -> next start, median, state file / bare spawn+wait"][2] == "2"
    assert rows["SIGKILL 100 -> all back / bare kill+reap+spawn"][2] == "2"
    assert rows["list of 1000 again, nothing changed / json.dumps"][2] == "0.25"
    assert rows["idle wake-ups in 10 s"][0] == "0"
    assert not any("respawn gap exit -> next start, median /" in r for r in rows)  # not measured
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps({"peers": None, "modules": {"core": {"ok": True, "result": core}}}))
    assert cli.main(["--markdown", str(saved)]) == 0
    assert "| SIGKILL 100 -> all back / bare kill+reap+spawn | 0.5 s | 0.25 s | 2 |" in capsys.readouterr().out
