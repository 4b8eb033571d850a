"""Shared test setup: import pyprocd from src/, and helpers every layer uses."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
# Subprocesses started by tests (`python3 -m pyprocd ...`) find the package too.
os.environ["PYTHONPATH"] = str(SRC) + (
    os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""
)

VECTORS = ROOT.parent / "shared" / "vectors"
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (uid/gid/limits changes)")


def load_vectors(name):
    """Load ../shared/vectors/<name>.json; skip when the shared folder is absent."""
    import json

    path = VECTORS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"vector file {path} not found (shared/ must sit beside the checkout)",
                    allow_module_level=True)
    with open(path) as f:
        return json.load(f)
