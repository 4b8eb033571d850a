"""Reading processes from /proc: what 'a service runs' means for every peer."""

import os
import signal
import subprocess
import time

import pytest

from bench.peers import guard, procfs


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_matching_finds_a_child_by_exact_command_line(tmp_path):
    sleep = tmp_path / "sleep"
    sleep.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(sleep), "1000"])
    try:
        argv = (str(sleep), "1000")
        # exec may not have happened yet: wait for it
        wait_until(lambda: procfs.matching([os.getpid()], {argv}))
        assert procfs.matching([os.getpid()], {argv}) == {argv: proc.pid}
        assert procfs.matching([os.getpid()], {(str(sleep), "999")}) == {}
        usage = procfs.usage(proc.pid)
        assert usage["rss_kb"] > 0 and usage["pss_kb"] > 0
        assert procfs.mentions(proc.pid, str(tmp_path))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert procfs.usage(proc.pid) is None


def test_a_marker_too_short_to_be_specific_is_refused():
    with pytest.raises(ValueError):
        guard.kill_all(marker="")
    with pytest.raises(ValueError):
        procfs.processes_mentioning("/tmp")


def test_kill_all_ends_a_tree_including_grandchildren(tmp_path):
    # a shell whose child outlives it unless the tree is killed
    script = f"{tmp_path}/bin-sleep 1000 & echo $! > {tmp_path}/pid; wait"
    (tmp_path / "bin-sleep").symlink_to("/bin/sleep")
    shell = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
    pidfile = tmp_path / "pid"
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip())
    grandchild = int(pidfile.read_text())
    assert grandchild in procfs.descendants([shell.pid])
    assert guard.kill_all(roots=[shell.pid], marker=str(tmp_path)) == []
    shell.wait()
    assert procfs.processes_mentioning(str(tmp_path)) == []
