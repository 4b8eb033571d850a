"""Keep libuci's machine-wide /tmp/.uci and /var/run/uci out of these tests."""

import pytest


@pytest.fixture(autouse=True)
def private_uci_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("PYPROCD_UCI_SAVEDIR", str(tmp_path / "tmp-uci"))
    monkeypatch.setenv("PYPROCD_UCI_CONF2DIR", str(tmp_path / "var-run-uci"))
