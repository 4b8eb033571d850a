"""Keep libuci's machine-wide /tmp/.uci and /var/run/uci out of these tests."""

import os

import pytest


@pytest.fixture(autouse=True)
def private_uci_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("PYPROCD_UCI_SAVEDIR", str(tmp_path / "tmp-uci"))
    monkeypatch.setenv("PYPROCD_UCI_CONF2DIR", str(tmp_path / "var-run-uci"))


@pytest.fixture(autouse=True)
def usual_umask():
    """As root, uci ignores delta directories writable by group or others:
    the directories these tests make must not be, whatever the caller's umask."""
    old = os.umask(0o022)
    yield
    os.umask(old)
