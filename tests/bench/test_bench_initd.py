"""bench_initd: `/etc/init.d/x start` through the kit is timed and its Python processes counted."""

import os

from bench import bench_initd


def test_a_start_through_the_kit_is_measured_and_cleaned_up(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    result = bench_initd.run(True)
    assert result["start_seconds"] > 0 and result["initd_start_seconds"] > 0
    procs = result["python_processes"]
    # one message (jshn -w), one `ubus call service set`, UCI for the config and respawn
    assert procs["jshn"]["count"] == 1 and procs["ubus"]["count"] == 1
    assert procs["uci"]["count"] >= 1
    assert result["python_processes_per_start"] == sum(p["count"] for p in procs.values())
    assert os.listdir(tmp_path) == []  # the bench's own directory is gone
