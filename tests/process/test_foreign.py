"""The shim and a real filter under another ABI's Python, when one is available:
set PYPROCD_FOREIGN_PYTHON to a command that runs that interpreter; skipped otherwise.

How such an interpreter was made here (Debian, no install into the system):
    dpkg --add-architecture armhf && apt-get update
    apt-get download libc6:armhf libgcc-s1:armhf libffi8:armhf zlib1g:armhf \
        libexpat1:armhf python3.11-minimal:armhf libpython3.11-minimal:armhf \
        libpython3.11-stdlib:armhf python3-cffi-backend:armhf
    for f in *.deb; do dpkg -x $f ROOT; done
    # wrapper: PYTHONHOME=ROOT/usr PYTHONPATH=ROOT/usr/lib/python3/dist-packages
    #          QEMU_LD_PREFIX=ROOT qemu-arm-static ROOT/usr/bin/python3.11 "$@"
For i386 no emulator is needed (ROOT/lib/ld-linux.so.2 --library-path ... python3.11),
and the filter is then enforced by this x86_64 kernel for real. Under qemu-user the
emulator refuses seccomp filters, so that part skips there.
"""

import json
import os
import shlex
import subprocess

import pytest

from tests.conftest import SRC

HERE = os.path.dirname(os.path.abspath(__file__))
FOREIGN = os.environ.get("PYPROCD_FOREIGN_PYTHON")


@pytest.fixture(scope="module")
def report():
    if not FOREIGN:
        pytest.skip("PYPROCD_FOREIGN_PYTHON not set (no foreign-ABI interpreter)")
    done = subprocess.run(shlex.split(FOREIGN) + [os.path.join(HERE, "foreign_check.py"),
                                                  str(SRC)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_layouts_follow_the_foreign_abi(report):
    pointer = report["pointer"]
    assert report["layouts"] == {
        "struct sock_filter": 8, "struct sock_fprog": 2 * pointer,
        "struct user_cap_header": 8, "struct user_cap_data": 12, "struct rlimit64_k": 16,
        "fprog.filter": pointer, "rlimit.max": 8}


def test_capget_and_64_bit_prlimit(report):
    assert report["capget_matches"] is True
    # A 32-bit kernel (a real armhf or mipsel router, not qemu-user on a 64-bit
    # one) keeps limits in an unsigned long: prlimit64 makes anything at or
    # above its ULONG_MAX infinite. A truncating shim would read back 0.
    assert report["prlimit_fsize"] in (str(1 << 40), str(2**64 - 1))


def test_filter_for_the_foreign_arch_is_enforced(report):
    if report["seccomp"].startswith("OSError 22"):
        pytest.skip(f"{report['arch']}: the emulator refuses seccomp filters (EINVAL)")
    assert report["seccomp"] == "1,13,ok,2"
