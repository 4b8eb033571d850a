"""Installing missing peers with the ordinary clients, tolerating failure.

supervisord and circus come from PyPI (pip), runit and s6 from Debian (apt-get,
as root).  A peer that still cannot be installed is reported unavailable.
"""

import importlib
import os
import shutil
import subprocess
import sys

PIP = {"supervisord": "supervisor", "circus": "circus"}
APT = {"runit": "runit", "s6": "s6"}


def _run(argv, timeout):
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_installed(peer_classes, say):
    """Try to install each missing peer once; never raises."""
    pip = [PIP[p.name] for p in peer_classes if p.name in PIP]
    apt = [APT[p.name] for p in peer_classes if p.name in APT]
    if pip:
        say(f"peers: pip install {' '.join(pip)}")
        if not _run([sys.executable, "-m", "pip", "install", "-q",
                     "--disable-pip-version-check", *pip], timeout=600):
            say("peers: pip install failed")
        importlib.invalidate_caches()
    if apt:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            say(f"peers: cannot install {' '.join(apt)} (needs root and apt-get)")
            return
        say(f"peers: apt-get install {' '.join(apt)}")
        argv = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *apt]
        # stale package lists are the usual cause of failure: refresh once and retry
        if not _run(argv, timeout=600) and not (
                _run(["apt-get", "update", "-qq"], timeout=300) and _run(argv, timeout=600)):
            say("peers: apt-get install failed")
