"""`pyprocd bus` command line."""

import subprocess
import sys

from pyprocd.bus.serve import parse_args


def test_options():
    assert parse_args([]) == {"socket": "/var/run/ubus/ubus.sock", "acl_dir": None}
    assert parse_args(["-s", "/tmp/x.sock"]) == {"socket": "/tmp/x.sock", "acl_dir": None}
    assert parse_args(["-s/tmp/y", "-A", "/etc/acl"]) == {"socket": "/tmp/y", "acl_dir": "/etc/acl"}
    assert parse_args(["-s"]) is None
    assert parse_args(["--help"]) is None


def test_usage_and_listen_failure(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "pyprocd", "bus", "-x"], capture_output=True,
                         timeout=60, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith(b"Usage: pyprocd bus")
    target = tmp_path / "file"
    target.write_text("")
    nope = subprocess.run([sys.executable, "-m", "pyprocd", "bus", "-s", str(target / "s.sock")],
                          capture_output=True, timeout=60, check=False)
    assert nope.returncode == 1 and b"cannot listen" in nope.stderr
