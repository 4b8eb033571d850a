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


def compile_c(folder, source, name, compiler="cc", extra=()):
    """Build tests/trace/<source> with `compiler`; skip (with the reason) when it cannot."""
    import shutil

    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed (the C test programs need it)")
    out = os.path.join(folder, name)
    built = subprocess.run([compiler, "-O2", "-o", out, str(HERE / source), *extra],
                           capture_output=True, text=True, check=False)
    if built.returncode != 0:
        pytest.skip(f"{compiler} could not build {source}: {built.stderr.strip()[-300:]}")
    return out


def recorded_names(folder, argv, name="recorded.json"):
    """Trace argv to its end; the names of the policy it left."""
    path = os.path.join(folder, name)
    out = trace(["-f", path, "--", *argv])
    assert out.returncode in (0, 42), out.stderr
    return policy_names(path)
