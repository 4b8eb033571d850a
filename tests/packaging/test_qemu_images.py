"""The QEMU image builder's host side, without booting anything: the payload
installs the .ipk as opkg would without cutting the base's merged-/usr links,
and the console parser counts what the guest reported (a silent guest fails)."""

import subprocess
import sys

import pytest

from tests.packaging.pkg_helpers import ROOT

sys.path.insert(0, str(ROOT / "images"))

import builder
import qemu_test


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    import shutil

    if not shutil.which("busybox"):
        pytest.skip("busybox not installed: the package's postinst-pkg runs under ash")
    work = tmp_path_factory.mktemp("payload")
    ipk = builder.build_ipk(work / "ipk")
    return builder.build_payload(ipk, work / "payload.cpio", work), work / "stage"


def cpio_listing(path):
    with open(path, "rb") as archive:
        out = subprocess.run(["cpio", "-itv", "--quiet"], stdin=archive,
                             capture_output=True, text=True, check=True, timeout=60)
    return {line.split()[-1] if " -> " not in line else line.split()[-3]: line
            for line in out.stdout.splitlines()}


def test_payload_installs_the_package_like_opkg(payload):
    _, stage = payload
    info = stage / "usr/lib/opkg/info"
    listed = (info / "pyprocd.list").read_text().split()
    assert "/usr/bin/pyprocd" in listed and "/etc/config/pyprocd" in listed
    assert all((stage / p.lstrip("/")).is_file() for p in listed)
    for script in ("control", "postinst", "prerm", "postinst-pkg", "prerm-pkg", "conffiles"):
        assert (info / f"pyprocd.{script}").is_file()
    status = (stage / "usr/lib/opkg/status").read_text()
    assert "Status: install user installed" in status
    import hashlib

    md5 = hashlib.md5((stage / "etc/config/pyprocd").read_bytes()).hexdigest()
    assert f" /etc/config/pyprocd {md5}" in status


def test_payload_writes_through_merged_usr_links(payload):
    # The kernel replaces a base symlink by a payload directory of the same
    # name: a `lib` entry would cut /lib -> usr/lib and no program would run.
    import shutil

    if not shutil.which("cpio"):
        pytest.skip("cpio not installed")
    path, _ = payload
    names = cpio_listing(path)
    assert not {"lib", "bin", "sbin"} & set(names)
    assert not [n for n in names if n.startswith(("lib/", "bin/", "sbin/"))]
    assert "usr/lib/functions/pyprocd.sh" in names
    # /init: a busybox sh script that moves the root off the initramfs, then execs init
    assert names["init"].startswith("-rwx")
    assert names["dev/console"].startswith("c")
    assert "qemu/scenarios/10-instance.py" in names
    assert path.stat().st_size % 4 == 0


def test_console_counts_passes_failures_and_dead_scenarios():
    lines = [
        "[    1.0] kernel noise",
        "@@QT BOOT uptime=3.5",
        "@@QT PASS instance/a",
        "noise @@QT FAIL instance/b: pid 12 still there",
        "@@QT SKIP process-tests/x: no cpp",
        "@@QT FIGURE daemon-rss 10.1 MiB",
        "@@QT SCENARIO-END 10-instance.py rc=0",
        "@@QT SCENARIO-END 20-figures.py rc=1",
        "@@QT DONE",
    ]
    result = qemu_test.parse_console("mipsel", lines)
    assert result.summary() == "mipsel: 1 passed, 2 failed"
    assert result.failed == ["instance/b: pid 12 still there",
                             "20-figures.py: scenario ended with rc 1"]
    assert result.figures == {"daemon-rss": "10.1 MiB"}


def test_a_guest_that_never_finishes_fails():
    result = qemu_test.parse_console("armhf", ["@@QT PASS instance/a"])
    assert result.summary() == "armhf: 1 passed, 1 failed"
    assert "did not report DONE" in result.failed[0]


def test_invert_knob(monkeypatch):
    monkeypatch.setenv("QEMU_TEST_INVERT", "1")
    assert qemu_test.invert_knob() == "instance/all-instances-running"
    monkeypatch.setenv("QEMU_TEST_INVERT", "instance/nice")
    assert qemu_test.invert_knob() == "instance/nice"
    monkeypatch.setenv("QEMU_TEST_INVERT", "")
    assert qemu_test.invert_knob() is None
