"""bench_reexec runs (quick) and proves what it measures: every pid kept."""


def test_bench_reexec_quick(procs):
    from bench import bench_reexec

    result = bench_reexec.run(True)
    assert result["instances"] == 100
    assert result["pids_kept"] is True
    assert len(result["reexec_all_s"]) == 2
