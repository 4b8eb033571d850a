"""Shared test setup: import pyprocd from src/, and helpers every layer uses."""

import os
import signal
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

# A suite started under `nohup` or as a background job inherits SIGHUP (or
# SIGQUIT) ignored, and children keep an inherited ignore across exec (as
# under procd): a shell's `trap ... HUP` then silently does nothing. The tests
# describe a normally started system, so they start from default dispositions.
for _sig in ("SIGHUP", "SIGQUIT"):
    if signal.getsignal(getattr(signal, _sig)) == signal.SIG_IGN:
        signal.signal(getattr(signal, _sig), signal.SIG_DFL)
# A background job also starts with SIGINT ignored: Python then installs no
# KeyboardInterrupt handler in the tools the tests start, and services keep
# the ignore too, so Ctrl-C and `kill -INT` tests would see nothing happen.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


def _vectors_missing_note():
    return (f"WARNING: {VECTORS} is missing: every replay of the recorded procd/ubusd/uci/"
            "libubox behaviour is SKIPPED (about 440 tests). Put shared/ beside the checkout.")


def pytest_report_header(config):
    if not VECTORS.is_dir():
        return _vectors_missing_note()
    return None


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", ())
               if "vector file" in str(getattr(r, "longrepr", ""))]
    if not VECTORS.is_dir() or skipped:
        terminalreporter.write_sep("!", "recorded vectors missing", red=True, bold=True)
        terminalreporter.write_line(_vectors_missing_note())
        terminalreporter.write_line(f"{len(skipped)} test module(s)/test(s) skipped for it.")


# The host's own files that a daemon, a CLI or a bench would use by default. No test
# may touch them: each test gives its daemon a state file, confdir and savedir of its own.
HOST_PATHS = ("/var/run/pyprocd", "/var/run/pyprocd.pid", "/run/pyprocd", "/etc/config",
              "/tmp/.uci", "/var/run/uci", "/var/run/config.md5")


def _host_paths_state():
    state = {}
    for path in HOST_PATHS:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        entries = sorted(os.listdir(path)) if os.path.isdir(path) else None
        state[path] = (st.st_mtime_ns, st.st_size, entries)
    return state


@pytest.fixture(autouse=True)
def _nothing_written_to_the_host():
    # On by `make test` (and so in CI); off for single runs on a machine where other
    # sessions' daemons may legitimately use these paths at the same time.
    if os.environ.get("PYPROCD_HOST_GUARD") != "1":
        yield
        return
    before = _host_paths_state()
    yield
    after = _host_paths_state()
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert not changed, f"this test wrote to the host's own files: {changed}"
