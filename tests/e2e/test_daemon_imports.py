"""The daemon's module budget, read from the real daemon while it works.

The daemon runs with PYTHONPROFILEIMPORTTIME, so every module it imports, at
start or lazily while serving calls, is named on its stderr. Each import
costs RAM for the daemon's life on a router: DESIGN.md names the modules the
daemon path must never import, and the count is held to a budget.
"""

import os
import re
import subprocess
import sys

import pytest

from tests.e2e.stack import Stack

# Never in the daemon (each costs 0.5-9 MB or pulls in many modules).
FORBIDDEN = {"argparse", "dataclasses", "json", "re", "enum", "hashlib", "asyncio"}
# Modules (submodules included) at start plus everything the workload below pulls in,
# the daemon started as the package starts it (not `-m`: runpy and importlib.util
# would add ~14). Raise only with a reason.
BUDGET = 78
# The command the OpenWrt package installs as /usr/bin/pyprocd.
PACKAGE_COMMAND = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "openwrt", "files", "usr", "bin", "pyprocd")

IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$", re.MULTILINE)


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    s.start_bus()
    # As on a router: no site module (this host's .pth files import re, enum, ...),
    # so cffi's directory goes on the path instead.
    import cffi

    s.python = [sys.executable, "-S"]
    s.program = [PACKAGE_COMMAND]
    s.env["PYTHONPATH"] += os.pathsep + os.path.dirname(os.path.dirname(cffi.__file__))
    s.env["PYTHONPROFILEIMPORTTIME"] = "1"
    yield s
    s.close()


def imported(stderr):
    return {m.group(2) for m in IMPORT_LINE.finditer(stderr)}


def workload(stack, tmp_path):
    """Calls that reach the lazily imported paths: file digests, netdev, data, triggers."""
    watched = tmp_path / "watched.conf"
    watched.write_text("x=1\n")
    service = {"name": "budget", "instances": {"main": {
        "command": ["/bin/sleep", "300"], "file": [str(watched)], "netdev": ["lo"],
        "respawn": ["3600", "5", "5"], "stdout": True, "stderr": True, "term_timeout": 2}},
        "data": {"k": {"a": [1, 2]}},
        "triggers": [["config.change", ["if", ["eq", "package", "budget"],
                                        ["run_script", "/bin/true"]]]]}
    assert stack.call("set", service)[0] == 0
    assert stack.call("list", {"verbose": True})[0] == 0
    assert stack.call("get_data", {"name": "budget"})[0] == 0
    assert stack.call("event", {"type": "config.change", "data": {"package": "budget"}})[0] == 0
    assert stack.call("signal", {"name": "budget", "signal": 1})[0] == 0
    assert stack.call("delete", {"name": "budget"})[0] == 0


def test_daemon_imports_stay_within_budget(stack, tmp_path):
    stack.start_daemon()
    workload(stack, tmp_path)
    assert stack.stop_daemon() == 0
    modules = imported(stack.daemon_stderr())
    assert modules, "no import lines: PYTHONPROFILEIMPORTTIME was not honoured"
    assert not FORBIDDEN & modules, f"the daemon imported {sorted(FORBIDDEN & modules)}"
    assert len(modules) <= BUDGET, (len(modules), sorted(modules))


def test_the_budget_check_sees_lazy_imports(tmp_path):
    """The reader itself: a module imported lazily by a child shows in the parsed set."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    out = subprocess.run([sys.executable, "-c", "def f():\n import json\nf()"],
                         env=env, capture_output=True, text=True, check=True)
    assert "json" in imported(out.stderr)
