"""The event loop: timers, readers, child exits, no zombies."""

import os
import signal

import pytest

from pyprocd.loop import Loop


def test_timers_fire_in_order_and_cancel():
    loop = Loop()
    loop.strict = True
    fired = []
    loop.call_later(0.02, fired.append, "b")
    loop.call_later(0.01, fired.append, "a")
    dropped = loop.call_later(0.015, fired.append, "x")
    dropped.cancel()
    assert loop.run_until(lambda: len(fired) == 2, timeout=10)
    assert fired == ["a", "b"]
    loop.close()


def test_reader_and_child_exit_status():
    loop = Loop()
    loop.strict = True
    r, w = os.pipe()
    got = []
    loop.add_reader(r, lambda: got.append(os.read(r, 100)))
    pid = os.fork()
    if pid == 0:
        os.write(w, b"hi")
        os._exit(7)
    exits = []
    loop.watch_child(pid, lambda p, status: exits.append((p, status)))
    assert loop.run_until(lambda: exits and got, timeout=20)
    assert got == [b"hi"]
    assert exits[0][0] == pid and os.waitstatus_to_exitcode(exits[0][1]) == 7
    loop.remove_reader(r)
    os.close(r)
    os.close(w)
    loop.close()


def test_orphans_are_reaped_and_watched_children_dispatched_once():
    loop = Loop()
    loop.strict = True
    reaped, exits = [], []
    loop.on_orphan_reaped = lambda pid, status: reaped.append(pid)
    pids = []
    for _ in range(50):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
        loop.watch_child(pid, lambda p, s: exits.append(p))
    # A child nobody watches must still be reaped (SIGCHLD path).
    stray = os.fork()
    if stray == 0:
        os._exit(0)
    assert loop.run_until(lambda: len(exits) == 50 and stray in reaped, timeout=30)
    assert sorted(exits) == sorted(pids)
    loop.close()


def test_signal_handler_runs_in_loop():
    loop = Loop()
    loop.strict = True
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, seen.append)
    os.kill(os.getpid(), signal.SIGUSR1)
    assert loop.run_until(lambda: seen, timeout=10)
    assert seen == [signal.SIGUSR1]
    loop.close()


@pytest.mark.parametrize("delay", [2147484, 2**31, 1e300, 10**400])
def test_timers_longer_than_epoll_can_wait_do_not_break_the_loop(delay):
    # epoll takes a C int of milliseconds: about 24.8 days at most. The
    # daemon's loop waits for its next timer with no other timeout.
    loop = Loop()
    loop.strict = True
    far = loop.call_later(delay, lambda: None)
    r, w = os.pipe()
    got = []
    loop.add_reader(r, lambda: got.append(os.read(r, 10)))
    os.write(w, b"x")
    loop.run_once()  # returns at once for the readable pipe
    assert got == [b"x"]
    assert not far.cancelled and far.remaining() > 2_000_000
    loop.remove_reader(r)
    os.close(r)
    os.close(w)
    loop.close()
