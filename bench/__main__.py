"""`python3 -m bench [--quick] [--only NAME ...] [--json FILE]` (what `make bench` runs).

Runs the peer comparison (bench/peers) and every module bench/bench_*.py
that defines run(quick: bool) -> dict, prints tables, writes JSON.
`--compare A.json B.json` checks that two runs' ratios agree within their noise.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC = os.path.join(ROOT, "src")
DEFAULT_JSON = os.path.join(HERE, "results.json")
MODULE_TIMEOUT = 1800.0  # seconds; a hung module is reported, the run goes on


def module_names():
    """Short names of bench/bench_*.py modules: bench_wire.py -> 'wire'."""
    return sorted(f[len("bench_"):-3] for f in os.listdir(HERE)
                  if f.startswith("bench_") and f.endswith(".py"))


def run_module(name, quick, timeout=MODULE_TIMEOUT):
    """Run bench/bench_<name>.py's run(quick) in a child process; never raises Exception.

    {'ok': True, 'result': dict} or {'ok': False, 'error': text}."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, SRC, env.get("PYTHONPATH")) if p)
    fd, out = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".json")
    os.close(fd)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "bench._module", name,
                                 "1" if quick else "0", out], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
        finally:
            # timed out, interrupted or done: nothing of its process group outlives it
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        with open(out) as f:
            text = f.read()
        if not text:
            return {"ok": False, "error": f"module process exited with {code}, no result"}
        return json.loads(text)
    finally:
        os.unlink(out)


def parse_args(argv):
    from .peers.harness import PEER_NAMES

    p = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smaller numbers, fewer repetitions (a minute or two)")
    p.add_argument("--only", nargs="+", metavar="NAME", default=[],
                   help="run only these: 'peers', a peer ({}) or a module ({})".format(
                       ", ".join(PEER_NAMES), ", ".join(module_names()) or "none yet"))
    p.add_argument("--json", default=DEFAULT_JSON, metavar="FILE",
                   help="where to write the results (default bench/results.json)")
    p.add_argument("--services", type=int, help="services in the start scenario (200)")
    p.add_argument("--kill", type=int, help="services for idle and kill-all (100)")
    p.add_argument("--idle", type=float, help="idle window in seconds (10)")
    p.add_argument("--reps", type=int, help="interleaved repetitions (5)")
    p.add_argument("--respawns", type=int, help="respawns timed per repetition (5)")
    p.add_argument("--settle", type=float, help="seconds between all-running and idle (1)")
    p.add_argument("--circus-check-delay", type=float,
                   help="circus' polling period = its restart delay (0.1; circus' default 5)")
    p.add_argument("--no-install", action="store_true",
                   help="do not pip/apt-get install missing peers; report them unavailable")
    p.add_argument("--tmpdir", help="parent of the benchmark's temp dir (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                   help="compare the ratios of two result files and exit")
    p.add_argument("--markdown", metavar="RESULTS.json",
                   help="print a result file's peer tables as Markdown (README) and exit")
    args = p.parse_args(argv)
    known = {"peers", *PEER_NAMES, *module_names()}
    unknown = [n for n in args.only if n not in known and n.removeprefix("bench_") not in known]
    if unknown:
        p.error(f"--only: unknown name(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    args.only = [n.removeprefix("bench_") for n in args.only]
    return args


def peer_config(args):
    from .peers.harness import Config

    cfg = Config.quick() if args.quick else Config()
    for field in ("services", "kill", "idle", "reps", "respawns", "settle", "tmpdir",
                  "circus_check_delay"):
        value = getattr(args, field)
        if value is not None:
            setattr(cfg, field, value)
    cfg.install = not args.no_install
    cfg.keep = args.keep
    return cfg


def plan(args):
    """(run the peer harness?, peer names to restrict it to, module names to run)."""
    from .peers.harness import PEER_NAMES

    modules = module_names()
    if not args.only:
        return True, [], modules
    peers = [n for n in args.only if n in PEER_NAMES]
    run_peers = "peers" in args.only or bool(peers)
    return run_peers, ([] if "peers" in args.only else peers), [
        m for m in modules if m in args.only]


def compare(path_a, path_b):
    from .peers.stats import agree

    with open(path_a) as f:
        a = json.load(f)
    with open(path_b) as f:
        b = json.load(f)
    ra, rb = (a.get("peers") or {}).get("ratios", {}), (b.get("peers") or {}).get("ratios", {})
    bad = 0
    for peer in sorted(set(ra) & set(rb)):
        for metric in ra[peer]:
            x, y = ra[peer][metric], rb[peer].get(metric)
            if not y:
                continue
            verdict = agree(x, y)
            if verdict is False:
                bad += 1
            print(f"{peer:12} {metric:18} {_r(x)} vs {_r(y)}: "
                  f"{'agree' if verdict else 'DIFFER' if verdict is False else 'n/a'}")
    print(f"{bad} ratio(s) differ by more than their noise")
    return 1 if bad else 0


def _r(r):
    if r["ratio"] is None:
        return "-"
    noise = f" ±{r['noise'] * 100:.0f}%" if r["noise"] is not None else ""
    return f"{r['ratio']:.3g}{noise}"


def main(argv=None):
    if SRC not in sys.path:
        sys.path.insert(0, SRC)
    from . import report
    from .peers import guard, harness

    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.compare:
        return compare(*args.compare)
    if args.markdown:
        with open(args.markdown) as f:
            saved = json.load(f)
        if saved.get("peers"):
            print(report.peers_markdown(saved))
        core = (saved.get("modules") or {}).get("core")
        if core and core.get("ok"):
            print("\n" + report.core_markdown(core["result"]))
        return 0
    run_peers, peer_names, modules = plan(args)
    guard.install_signal_handlers()
    results = {"machine": harness.machine(), "quick": args.quick, "peers": None, "modules": {}}
    code = 0
    try:
        if run_peers:
            # services orphaned by a dying supervisor come back to us, to be cleaned up;
            # off again for the modules, which run as they would on their own
            guard.become_subreaper(True)
            try:
                results["peers"] = harness.run(peer_config(args), peer_names)
            finally:
                guard.become_subreaper(False)
            print(report.peers_table(results["peers"]), flush=True)
        for name in modules:
            print(f"bench: module {name} ...", file=sys.stderr, flush=True)
            results["modules"][name] = run_module(name, args.quick)
    except (KeyboardInterrupt, guard.Interrupted):
        # What was measured before the interruption is kept and written, marked as such.
        print("bench: interrupted; every started process was stopped", file=sys.stderr)
        results["interrupted"] = True
        code = 130
    finally:
        guard.ignore_interrupts()
        guard.kill_all(include_own=True)  # whatever a module may have left running
    if results["modules"]:
        print("\n" + report.modules_table(results["modules"]), flush=True)
        core = results["modules"].get("core")
        if core and core.get("ok"):
            print("\n" + report.core_table(core["result"]), flush=True)
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} x {m['cpu']}, kernel {m['kernel']}, "
          f"python {m['python']}, {m['date']}")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    print(f"results{' so far' if code else ''} written to {args.json}")
    return code


if __name__ == "__main__":
    sys.exit(main())
