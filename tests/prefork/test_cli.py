"""pyprocd's own commands through prefork-interp answer exactly as when run cold."""

import os
import subprocess
import sys

import pytest

from tests.conftest import SRC
from tests.e2e.stack import Stack
from tests.prefork.test_server import (
    DEADLINE,
    Namespace,
    alive,
    pytestmark,  # noqa: F401 - the same skips
    wait_for,
)

WARM_CLI = SRC / "pyprocd" / "prefork" / "cli.py"


@pytest.fixture
def ns(tmp_path):
    space = Namespace(tmp_path)
    yield space
    space.close()


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path).start()
    yield s
    s.close()


def cold(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pyprocd", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=DEADLINE, check=False)


def test_ubus_and_uci_through_prefork_match_cold_runs(ns, stack, tmp_path):
    assert stack.call("set", {"name": "x", "instances": {"i": {
        "command": ["/bin/sleep", "100"]}}})[0] == 0
    config = tmp_path / "config"
    (config / "demo").write_text("config thing 'a'\n\toption key 'value'\n")
    calls = [["ubus", "-s", stack.socket, "call", "service", "list"],
             ["ubus", "-s", stack.socket, "-v", "list", "service"],
             ["ubus", "-s", stack.socket, "call", "service", "nosuch"],
             ["uci", "-c", str(config), "show", "demo"],
             ["uci", "-c", str(config), "get", "demo.a.nothing"]]
    for args in calls * 2:  # the second round is served by the warm server
        warm = ns.run(*args, script=WARM_CLI)
        expected = cold(*args, cwd=tmp_path)
        assert (warm.returncode, warm.stdout, warm.stderr) == (
            expected.returncode, expected.stdout, expected.stderr), args
    servers = [p for p in ns.members() if alive(p) and "python" in os.readlink(f"/proc/{p}/exe")]
    assert len(servers) == 1, servers  # one warm server (beside its watcher) answered all
    assert ns.run("ubus", "-s", stack.socket, "list", options=["--kill"],
                  script=WARM_CLI).returncode == 0
    assert wait_for(lambda: not alive(servers[0]))
