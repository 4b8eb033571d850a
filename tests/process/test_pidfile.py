"""follow_pidfile: reading a daemonising service's new pid, bounded, never adopting a
stale or foreign pid."""

import os
import subprocess
import sys

from pyprocd.process import harden


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_read_pidfile_variants(tmp_path):
    path = tmp_path / "x.pid"
    assert harden.read_pidfile(str(path)) is None
    for text, expected in [("123\n", 123), ("  77  ", 77), ("", None), ("abc", None),
                           ("-5", None), ("0\n", None), ("42 extra", 42)]:
        path.write_text(text)
        assert harden.read_pidfile(str(path)) == expected, text


def test_waits_until_the_pidfile_names_a_live_new_pid(tmp_path):
    path = tmp_path / "d.pid"
    path.write_text("1\n")     # the exited main pid is still in the file at first
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        fake = FakeClock()

        def sleep(seconds):
            fake.sleep(seconds)
            if len(fake.sleeps) == 3:
                path.write_text(f"{child.pid}\n")

        pid = harden.follow_pidfile(str(path), 1, timeout=5, poll=0.1, sleep=sleep,
                                    clock=fake.clock)
        assert pid == child.pid and len(fake.sleeps) == 3
        assert harden.pidfile_candidate(str(path), 1, parent=os.getpid()) == child.pid
        assert harden.pidfile_candidate(str(path), 1, parent=1) is None   # not ours
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def test_gives_up_after_the_timeout(tmp_path):
    fake = FakeClock()
    path = tmp_path / "never.pid"
    assert harden.follow_pidfile(str(path), 99, timeout=2, poll=0.5, sleep=fake.sleep,
                                 clock=fake.clock) is None
    assert 2 <= fake.now < 2.6


def test_dead_or_zombie_pids_are_not_adopted(tmp_path):
    path = tmp_path / "z.pid"
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # exited but not yet reaped: a zombie
        os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)
        path.write_text(f"{zombie.pid}\n")
        assert harden.pidfile_candidate(str(path), 1) is None
    finally:
        zombie.wait(timeout=60)
    assert harden.pidfile_candidate(str(path), 1) is None   # gone


def test_pidfd_for_a_live_process():
    fd = harden.pidfd_open(os.getpid())
    if fd is not None:
        os.close(fd)
    assert harden.pidfd_open(2 ** 22 + 12345) is None


def test_lineage_admits_only_a_later_process_of_the_instances_user():
    from pyprocd.process.procfs import start_ticks

    child = subprocess.Popen(["/bin/sleep", "600"])
    try:
        ticks = start_ticks(child.pid)
        me, uid = os.getpid(), os.getuid()
        assert harden.Lineage(me, ticks, uid).admits(child.pid)
        assert not harden.Lineage(me, ticks + 1, None).admits(child.pid)   # older than the instance
        assert not harden.Lineage(me, ticks, uid + 1).admits(child.pid)    # another user's
        assert not harden.Lineage(1, ticks, None).admits(child.pid)        # not re-parented to us
        taken = harden.Lineage(me, ticks, None, owned_elsewhere=lambda pid: pid == child.pid)
        assert not taken.admits(child.pid)                                 # another instance's
    finally:
        child.kill()
        child.wait()
    assert not harden.Lineage(me, None, None).admits(child.pid)             # gone
