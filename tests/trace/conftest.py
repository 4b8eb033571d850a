"""Shared helpers for the tracer tests: run `pyprocd trace`, read its policy."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PROGRAM = str(HERE / "program.py")
SCENARIO = str(HERE / "scenario.py")
TRACER = [sys.executable, "-m", "pyprocd", "trace"]

def trace(args, timeout=120, **kwargs):
    """Run the tracer to its end: CompletedProcess with text stdout/stderr."""
    return subprocess.run(TRACER + list(args), capture_output=True, text=True, check=False,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)

def policy_names(path):
    with open(path) as f:
        document = json.load(f)
    (rule,) = document["syscalls"]
    assert rule["action"] == "SCMP_ACT_ALLOW"
    return rule["names"]

def scenario(action, marks, tracer_args, timeout=180):
    """Run scenario.py (the tracer under a subreaper): its JSON report."""
    out = subprocess.run([sys.executable, SCENARIO, action, str(marks), "--"] + TRACER
                         + list(tracer_args), capture_output=True, text=True, check=False,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)

def _ptrace_works():
    """Why tracing is impossible here (None when it works): tried once on /bin/true."""
    if not os.path.exists("/bin/true"):
        return "no /bin/true to trace"

    with tempfile.TemporaryDirectory() as folder:
        out = trace(["-d", folder, "--", "/bin/true"])
    if out.returncode != 0:
        return f"ptrace is not usable here: {out.stderr.strip()}"
    return None

@pytest.fixture(scope="session")
def tracing():
    reason = _ptrace_works()
    if reason:
        pytest.skip(reason)
