"""The OpenWrt feed: feeds/pyprocd/pyprocd/Makefile.

GNU make runs the real feed Makefile against a small stand-in of an OpenWrt
build tree (stubs/openwrt-topdir: rules.mk, include/package.mk and the
packages feed's python3-package.mk, written for these tests from what the
real ones do), reached through a symlink the way `./scripts/feeds install`
links package/feeds/pyprocd/pyprocd. The stand-in prints the package fields
and runs Build/Prepare, Build/Compile and Package/<pkg>/install into a
directory, so the test sees the file tree the feed would package and
compares it with the .ipk of `make ipk`.
"""

import os
import shutil
import subprocess
import sys

import pytest

from tests.packaging.pkg_helpers import ROOT, mkipk

FEED_MAKEFILE = ROOT / "feeds" / "pyprocd" / "pyprocd" / "Makefile"
TOPDIR = ROOT / "tests" / "packaging" / "stubs" / "openwrt-topdir"


@pytest.fixture(scope="module")
def feed_build(tmp_path_factory):
    if not shutil.which("make"):
        pytest.skip("GNU make not installed")
    tmp = tmp_path_factory.mktemp("feed")
    link = tmp / "package" / "feeds" / "pyprocd" / "pyprocd"
    link.parent.mkdir(parents=True)
    link.symlink_to(FEED_MAKEFILE.parent)
    dest = tmp / "dest"
    out = subprocess.run(
        ["make", "-s", "-C", str(link), f"TOPDIR={TOPDIR}", f"BUILD_DIR={tmp / 'build'}",
         f"MOCK_DEST={dest}", "mock-info", "mock-install"],
        capture_output=True, text=True, timeout=300, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
    )
    assert out.returncode == 0, out.stderr
    info, current = {}, None
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "PACKAGE":
            current = info.setdefault(value, {})
        elif current is not None and key.isupper():
            current[key] = value
    return info, dest


def tree(root):
    """{path on the router: (mode, bytes)} of the regular files under root."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = "/" + os.path.relpath(path, root)
            with open(path, "rb") as f:
                files[rel] = (os.stat(path).st_mode & 0o7777, f.read())
    return files


def test_makefile_follows_openwrt_python_package_conventions():
    text = FEED_MAKEFILE.read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert "include $(TOPDIR)/rules.mk" in lines
    assert "include $(INCLUDE_DIR)/package.mk" in lines
    assert "include $(PYPROCD_SOURCE_DIR)/openwrt/manifest.mk" in lines
    # python3-package.mk of the packages feed, after package.mk.
    assert "include $(PYTHON3_PACKAGE_MK)" in lines
    assert lines.index("include $(INCLUDE_DIR)/package.mk") < lines.index(
        "include $(PYTHON3_PACKAGE_MK)")
    # PYTHON3_PKG_BUILD is read with ?= by python3-package.mk: set it before.
    assert lines.index("PYTHON3_PKG_BUILD:=0") < lines.index("include $(PYTHON3_PACKAGE_MK)")
    for required in ("PKG_NAME:=pyprocd", "PKGARCH:=all", "define Package/pyprocd",
                     "define Package/pyprocd/description", "define Package/pyprocd/conffiles",
                     "define Py3Package/pyprocd/install",
                     "$(eval $(call Py3Package,pyprocd))",
                     "$(eval $(call BuildPackage,pyprocd))",
                     "$(eval $(call BuildPackage,pyprocd-src))"):
        assert required in lines, required
    for variable in ("PKG_VERSION:=", "PKG_RELEASE:=", "PKG_LICENSE:=", "PKG_MAINTAINER:="):
        assert any(line.startswith(variable) for line in lines), variable


def test_package_fields_come_from_the_manifest(feed_build):
    import pyprocd

    info, _ = feed_build
    manifest = mkipk.read_manifest()
    pkg = info["pyprocd"]
    assert pkg["PKG_NAME"] == "pyprocd"
    assert pkg["PKG_VERSION"] == pyprocd.__version__
    assert pkg["PKG_RELEASE"] == manifest["PYPROCD_RELEASE"]
    assert pkg["PKG_LICENSE"] == manifest["PYPROCD_LICENSE"]
    assert pkg["PKG_MAINTAINER"] == manifest["PYPROCD_MAINTAINER"]
    assert pkg["PKGARCH"] == "all"
    assert pkg["DEPENDS"].split() == ["+" + d for d in manifest["PYPROCD_DEPENDS"].split()]
    assert pkg["SECTION"] == manifest["PYPROCD_SECTION"]
    assert pkg["TITLE"] == manifest["PYPROCD_TITLE"]
    assert "python3/host" in pkg["PKG_BUILD_DEPENDS"].split()
    # Found through the package/feeds symlink, like in a real build tree.
    assert os.path.realpath(pkg["SOURCE_DIR"]) == os.path.realpath(ROOT)
    src = info["pyprocd-src"]
    assert src["PKGARCH"] == "all" and src["DEPENDS"] == ""
    assert src["TITLE"].endswith("(sources)")


def test_feed_file_list_matches_the_ipk(feed_build, built_ipk):
    _, dest = feed_build
    package = mkipk.Package()
    ipk = {path: (info.mode, content)
           for path, (info, content) in ((n[1:], v) for n, v in built_ipk.data.items())
           if info.isfile()}
    feed = tree(dest / "pyprocd")
    feed_src = tree(dest / "pyprocd-src")
    site = f"/usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"

    def split(files, site_packages, suffix):
        modules = {p[len(site_packages) + 1:].removesuffix(suffix)
                   for p in files if p.startswith(site_packages + "/")}
        others = {p: v for p, v in files.items() if not p.startswith(site_packages + "/")}
        return modules, others

    ipk_modules, ipk_others = split(ipk, package.site_packages, ".py")
    feed_modules, feed_others = split(feed, site, ".pyc")
    src_modules, src_others = split(feed_src, site, ".py")
    # The same files besides the Python package, byte for byte, same modes.
    assert feed_others == ipk_others
    # The same modules: .pyc in pyprocd (OpenWrt convention), .py in -src;
    # package data (the init-script kit's shell files) as it is in both.
    assert not any(p.endswith(".py") for p in feed if p.startswith(site + "/"))
    assert feed_modules == ipk_modules
    ipk_data = {p[len(package.site_packages) + 1:] for p in ipk
                 if p.startswith(package.site_packages + "/") and not p.endswith(".py")}
    assert src_modules == ipk_modules - ipk_data and src_others == {}
    assert (dest / "pyprocd.conffiles").read_text() == built_ipk.control_text("conffiles")


def test_feed_package_runs_from_bytecode_only(feed_build, tmp_path):
    import pyprocd

    _, dest = feed_build
    site = dest / "pyprocd" / f"usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}"
    env = dict(os.environ, PYTHONPATH=str(site / "site-packages"))
    out = subprocess.run(
        [sys.executable, str(dest / "pyprocd/usr/bin/pyprocd"), "--version"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )
    assert out.stdout.strip() == f"pyprocd {pyprocd.__version__}"


def test_whole_repository_works_as_a_src_git_feed():
    # OpenWrt's feed scan (include/scan.mk) takes every file named Makefile
    # that contains `call BuildPackage|KernelPackage|Build/DefaultTargets`.
    import re

    pattern = re.compile(r"call (Build/DefaultTargets|BuildPackage|KernelPackage)")
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        if "Makefile" in filenames:
            path = os.path.join(dirpath, "Makefile")
            with open(path, errors="replace") as f:
                if pattern.search(f.read()):
                    found.append(os.path.relpath(path, ROOT))
    assert sorted(found) == ["feeds/pyprocd/prefork-interp/Makefile",
                             "feeds/pyprocd/pyprocd/Makefile"]
