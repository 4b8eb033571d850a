"""A re-exec that fails half-way must not leave SIGTERM & co. blocked (the daemon could not be stopped)."""

import signal

import pytest

from pyprocd.daemon import reexec


def blocked():
    return signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_failed_handover_restores_the_signal_mask():
    before = blocked()

    def broken_drain():
        raise RuntimeError("drain failed")

    with pytest.raises(RuntimeError):
        reexec.handover({"services": []}, [], "PYPROCD_TEST_FD", broken_drain)
    assert blocked() == before
    assert not (reexec.control_signals() & blocked())


def test_loop_drain_signals_returns_pending_numbers():
    from pyprocd.loop import Loop

    loop = Loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda s: None)
    signal.raise_signal(signal.SIGUSR1)
    assert loop.drain_signals() == [signal.SIGUSR1]
    assert loop.drain_signals() == []
    loop.close()
