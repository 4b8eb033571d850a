"""/etc/config/pyprocd as shipped: what pyprocd's own settings reader makes of it."""

import re

import pytest

from tests.packaging.pkg_helpers import ROOT

CONFIG = ROOT / "openwrt" / "files" / "etc" / "config" / "pyprocd"

settings = pytest.importorskip("pyprocd.daemon.settings")


def test_shipped_defaults(tmp_path):
    (tmp_path / "pyprocd").write_text(CONFIG.read_text())
    loaded = settings.load_settings(str(tmp_path))
    assert loaded.object == "pyprocd"  # procd owns `service` on a stock router
    assert loaded.syslog == "/dev/log"
    assert loaded.socket is None  # empty option: the ubus default socket
    assert settings.declared_services(str(tmp_path)) == {}  # examples are commented out


def test_commented_examples_are_valid_services(tmp_path):
    # Uncomment the example sections (lines starting with "#config" or "#<tab>").
    text = re.sub(r"(?m)^#(?=config |\t)", "", CONFIG.read_text())
    (tmp_path / "pyprocd").write_text(text)
    problems = []
    services = settings.declared_services(str(tmp_path), log=lambda msg, *_: problems.append(msg))
    assert problems == []
    assert services["ntpclient"]["instances"] == {
        "instance1": {
            "command": ["/usr/sbin/ntpclient", "-s", "-h", "pool.ntp.org"],
            "respawn": ["3600", "5", "5"],
            "stdout": True,
            "stderr": True,
        }
    }
    ticker = services["ticker"]["instances"]
    assert ticker["instance1"]["command"] == [
        "/bin/sh", "-c", "while :; do logger tick; sleep 60; done"
    ]
    assert ticker["instance1"]["respawn"] == ["3600", "5", "0"]
    assert ticker["instance1"]["user"] == "nobody"
    assert ticker["ticker_fast"]["command"] == [
        "/bin/sh", "-c", "while :; do logger fast; sleep 5; done"
    ]
