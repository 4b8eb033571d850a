"""bench/bench_wire.py runs (each figure once, without timing) and gives JSON-able figures."""

import importlib.util
import json

from tests.conftest import ROOT


def test_bench_wire_runs_every_figure(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_wire", ROOT / "bench" / "bench_wire.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    calls = []

    def once(fn, seconds, reps):
        fn()
        calls.append(fn)
        return 10.0, 0.0

    monkeypatch.setattr(bench, "_rate", once)
    result = bench.run(quick=True)
    json.dumps(result)
    assert result["instances"] == 1000 and len(calls) == 8
    assert result["payload_bytes"] > result["json_bytes"] > 100000
    assert result["encode_ms"] == 100.0
