"""The .ipk's prerm-pkg on an offline image root (`opkg -o ROOT remove`).

opkg sets IPKG_INSTROOT to the image root when it works on one; a script
that then touches absolute paths changes the build machine instead of the
image. The check runs the script in a private mount namespace whose
/usr/lib/pythonX.Y is a fresh tmpfs holding a decoy `__pycache__`, so the
host's own files are never at risk, even while the script is wrong.
"""

import shutil
import subprocess

import pytest

from tests.packaging.pkg_helpers import mkipk, posix_shell

# Runs inside `unshare -rm`: hide the host's python dir, plant the decoy at
# the package's router path, run the script, report what survived.
SANDBOX = r"""
set -e
mount -t tmpfs decoy "$1"
mkdir -p "$2/__pycache__" && : > "$2/__pycache__/decoy.pyc"
IPKG_INSTROOT="$3" "$4" "$5" -c "$6"
[ -e "$2/__pycache__/decoy.pyc" ] && echo decoy-kept || echo decoy-removed
"""


def _unshare_works():
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30,
                           check=False)
    return probe.returncode == 0


def test_prerm_with_instroot_touches_only_the_image(tmp_path, built_ipk):
    shell = posix_shell()
    if len(shell) != 2 or shell[0] != "busybox":
        pytest.skip("busybox not installed (apt-get install busybox): OpenWrt runs prerm under ash")
    if not _unshare_works():
        pytest.skip("unshare -rm (user + mount namespace) not available here")
    pkg = mkipk.Package()
    python_dir = pkg.site_packages.rsplit("/", 1)[0]  # /usr/lib/pythonX.Y
    image = built_ipk.install(tmp_path / "image")
    in_image = image / pkg.package_dir.lstrip("/")
    (in_image / "__pycache__").mkdir()
    (in_image / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"")
    (in_image / "core" / "__pycache__").mkdir()
    busybox = shutil.which("busybox")
    # The mount point must exist on this host; a tmpfs over it is private.
    mount_point = python_dir if shutil.os.path.isdir(python_dir) else None
    if mount_point is None:
        pytest.skip(f"{python_dir} does not exist here to lay the decoy over")
    out = subprocess.run(
        ["unshare", "-rm", "sh", "-c", SANDBOX, "sandbox", mount_point, pkg.package_dir,
         str(image), busybox, "ash", built_ipk.control_text("prerm-pkg")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "decoy-kept", "prerm-pkg removed the build host's __pycache__"
    assert not list(in_image.rglob("__pycache__")), "the image's own bytecode stayed"
