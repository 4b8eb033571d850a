"""Statistics and respawn-log parsing of the peer harness (pure functions)."""

import pytest

from bench.peers import harness, stats


def test_summary_is_median_with_iqr_over_median():
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median"] == 3.0
    q1, q3 = 2.0, 4.0  # inclusive quartiles of the five values
    assert s["noise"] == pytest.approx((q3 - q1) / 3.0)
    assert s["n"] == 5


def test_summary_skips_failed_repetitions_and_handles_none_left():
    assert stats.summarize([None, 2.0, None])["median"] == 2.0
    assert stats.summarize([None, 2.0, None])["noise"] is None  # one sample: no noise figure
    assert stats.summarize([None])["median"] is None


def test_ratio_combines_noises_and_refuses_division_by_zero():
    a = {"median": 2.0, "noise": 0.3}
    b = {"median": 4.0, "noise": 0.4}
    r = stats.ratio(a, b)
    assert r["ratio"] == 0.5
    assert r["noise"] == pytest.approx(0.5)
    assert stats.ratio(a, {"median": 0, "noise": None})["ratio"] is None
    assert stats.ratio({"median": None, "noise": None}, b)["ratio"] is None


def test_agreement_within_the_combined_noise():
    assert stats.agree({"ratio": 1.0, "noise": 0.2}, {"ratio": 1.15, "noise": 0.05})
    assert not stats.agree({"ratio": 1.0, "noise": 0.05}, {"ratio": 1.5, "noise": 0.05})
    assert stats.agree({"ratio": None, "noise": None}, {"ratio": 1.0, "noise": 0.1}) is None


def test_respawn_gap_is_from_end_stamp_to_next_start_stamp(tmp_path):
    log = tmp_path / "respawn.log"
    # bash prints EPOCHREALTIME with the locale's decimal mark: accept a comma too
    log.write_text("S 10.000\nE 10.002\nS 10,012\nE 10.013\nS 11.013\nE 11.014\nS 11")
    gaps = harness.respawn_gaps(harness.read_stamps(str(log)))
    assert gaps == pytest.approx([0.010, 1.0])


def test_result_ratios_and_tables_from_samples():
    from bench import report
    from bench.peers.harness import METRICS, Config, Pyprocd, Runit, build_result

    cfg = Config(services=3, kill=2, idle=0.5, reps=2)
    samples = {
        "pyprocd": {key: [1.0, 3.0] for key, _, _ in METRICS},
        "runit": {key: [4.0, 4.0] for key, _, _ in METRICS},
    }
    result = build_result(cfg, [Pyprocd, Runit], {"s6": "not installed"}, samples,
                          {"pyprocd": [], "runit": ["rep 2 start: TimeoutError: 2/3 running"]})
    assert result["ratios"]["runit"]["start_s"]["ratio"] == 0.5  # median 2.0 / 4.0
    assert result["peers"]["s6"] == {"available": False, "reason": "not installed"}
    text = report.peers_table(result)
    assert "pyprocd/runit" in text and "0.5" in text
    assert "unavailable: s6: not installed" in text
    assert "error: runit: rep 2 start" in text
    md = report.peers_markdown({"peers": result, "machine": {
        "nproc": 2, "cpu": "X", "kernel": "k", "python": "3.11", "date": "d"}})
    assert "| start 3 services (s) | 2 ±" in md
    assert "| pyprocd/peer | runit |" in md
