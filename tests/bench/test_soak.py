"""`make soak`, small: set/delete/signal/kill cycles never stop the daemon or lose an instance."""

import subprocess
import sys

from tests.bench.test_bench_run import ROOT


def test_a_short_soak_keeps_the_daemon_and_every_instance():
    done = subprocess.run([sys.executable, "-m", "bench.soak", "--cycles", "400", "--seed", "7"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert "daemon alive throughout; nothing left running" in done.stdout
    assert " lost=0 " in done.stdout
