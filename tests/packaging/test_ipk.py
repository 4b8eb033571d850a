"""`make ipk`: the package opkg installs, built without the OpenWrt SDK."""

import gzip
import os
import shutil
import subprocess
import sys

import pytest

from tests.packaging.pkg_helpers import ROOT, Ipk, mkipk, posix_shell

SRC_PACKAGE = ROOT / "src" / "pyprocd"


def test_outer_container_is_ipkg_build_layout(built_ipk):
    # OpenWrt's ipkg-build: a gzipped tar (not an ar archive) whose members
    # are ./debian-binary, ./data.tar.gz, ./control.tar.gz in this order.
    assert built_ipk.raw[:2] == b"\x1f\x8b"
    assert not built_ipk.raw.startswith(b"!<arch>")
    names = [i.name for i in built_ipk.outer_infos]
    assert names == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    assert built_ipk.outer["./debian-binary"] == b"2.0\n"
    assert all(i.isfile() and i.uid == 0 and i.gid == 0 for i in built_ipk.outer_infos)


def test_busybox_tar_unpacks_all_three_levels(tmp_path, built_ipk):
    # opkg's unpacker comes from busybox's; busybox tar is the closest
    # independent reader here (GNU tar would do too).
    if not shutil.which("busybox"):
        pytest.skip("busybox not installed")

    def untar(archive, into):
        into.mkdir()
        subprocess.run(["busybox", "tar", "-xzf", str(archive), "-C", str(into)],
                       check=True, timeout=60)
        return into

    outer = untar(built_ipk.path, tmp_path / "outer")
    assert sorted(p.name for p in outer.iterdir()) == [
        "control.tar.gz", "data.tar.gz", "debian-binary"]
    control = untar(outer / "control.tar.gz", tmp_path / "control")
    assert (control / "control").read_text() == built_ipk.control_text("control")
    assert os.access(control / "postinst", os.X_OK)
    data = untar(outer / "data.tar.gz", tmp_path / "data")
    assert os.access(data / "etc/init.d/pyprocd", os.X_OK)
    assert sorted("/" + str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()) == (
        built_ipk.files())


def test_file_name_and_control_fields(built_ipk):
    import pyprocd

    fields = built_ipk.fields()
    release = mkipk.read_manifest()["PYPROCD_RELEASE"]
    assert fields["Package"] == "pyprocd"
    assert fields["Version"] == f"{pyprocd.__version__}-r{release}"
    assert built_ipk.path.name == f"pyprocd_{pyprocd.__version__}-r{release}_all.ipk"
    assert fields["Architecture"] == "all"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert depends[0] == "python3-light" and "python3-cffi" in depends
    assert fields["Maintainer"] and fields["License"] and fields["Section"]
    assert fields["Description"]
    # ipkg-build's rule: Installed-Size = bytes of the uncompressed data tar.
    data_tar = gzip.decompress(built_ipk.outer["./data.tar.gz"])
    assert int(fields["Installed-Size"]) == len(data_tar)
    # Field order as OpenWrt writes it; Description last.
    order = list(fields)
    assert order[:2] == ["Package", "Version"] and order[-1] == "Description"
    assert order.index("Architecture") < order.index("Installed-Size")


def test_conffiles_and_control_scripts(built_ipk):
    assert built_ipk.control_text("conffiles") == "/etc/config/pyprocd\n"
    assert "/etc/config/pyprocd" in built_ipk.files()
    for name in ("postinst", "prerm", "postinst-pkg", "prerm-pkg"):
        info, body = built_ipk.control[f"./{name}"]
        assert info.mode == 0o755, name
        assert body.startswith(b"#!/bin/sh\n"), name
        subprocess.run([*posix_shell(), "-n"], input=body, check=True)
    # OpenWrt's stubs: enable + start the init script on install, stop +
    # disable on removal, via /lib/functions.sh.
    assert "default_postinst $0 $@" in built_ipk.control_text("postinst")
    assert "default_prerm $0 $@" in built_ipk.control_text("prerm")


def test_permissions_and_ownership(built_ipk):
    data = built_ipk.data
    assert data["./etc/init.d/pyprocd"][0].mode == 0o755
    assert data["./usr/bin/pyprocd"][0].mode == 0o755
    assert data["./etc/config/pyprocd"][0].mode == 0o644
    assert data["./lib/functions/pyprocd.sh"][0].mode == 0o644
    mtimes = set()
    for name, (info, _) in data.items():
        assert info.uid == 0 and info.gid == 0, name
        assert info.isdir() or info.isfile(), name
        if info.isdir():
            assert info.mode == 0o755, name
        elif name.endswith(".py"):
            assert info.mode == 0o644, name
        mtimes.add(info.mtime)
    assert len(mtimes) == 1
    assert list(data) == sorted(data), "entries are sorted"


def test_python_package_is_complete_sources(built_ipk):
    pkg = mkipk.Package()
    shipped = {p for p in built_ipk.files() if p.startswith(pkg.package_dir + "/")}
    expected = {
        f"{pkg.package_dir}/{p.relative_to(SRC_PACKAGE).as_posix()}"
        for p in SRC_PACKAGE.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert expected <= shipped
    assert f"{pkg.package_dir}/__init__.py" in shipped
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in built_ipk.files())


def test_scratch_files_are_left_out():
    assert mkipk._is_scratch("cli.py~") and mkipk._is_scratch(".#cli.py")
    assert not mkipk._is_scratch("cli.py")


def test_build_is_deterministic(tmp_path):
    first = mkipk.build(tmp_path / "a").read_bytes()
    second = mkipk.build(tmp_path / "b").read_bytes()
    assert first == second


def test_other_python_version_moves_site_packages(tmp_path):
    ipk = Ipk(mkipk.build(tmp_path, python_version="3.13"))
    assert "/usr/lib/python3.13/site-packages/pyprocd/__init__.py" in ipk.files()
    assert "/usr/lib/python3.13/site-packages/pyprocd" in ipk.control_text("postinst-pkg")


def _installed_env(site_packages):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site_packages)  # only the unpacked root, not src/
    env.pop("PYTHONHOME", None)
    return env


def test_installed_entry_point_runs_from_empty_root(tmp_path, built_ipk):
    import pyprocd

    root = built_ipk.install(tmp_path / "root")
    pkg = mkipk.Package()
    site = root / pkg.site_packages.lstrip("/")
    env = _installed_env(site)
    out = subprocess.run(
        [sys.executable, str(root / "usr/bin/pyprocd"), "--version"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )
    assert out.stdout.strip() == f"pyprocd {pyprocd.__version__}"
    where = subprocess.run(
        [sys.executable, "-c", "import pyprocd.cli; print(pyprocd.cli.__file__)"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )
    assert where.stdout.strip().startswith(str(site)), "imported from the unpacked root"


def test_command_finds_a_package_built_for_another_python(tmp_path):
    # Built for 3.13's site-packages, run by this python: the command falls
    # back to <prefix>/lib/python3*/site-packages next to its <prefix>/bin.
    import pyprocd

    other = "3.13" if sys.version_info[:2] != (3, 13) else "3.12"
    ipk = Ipk(mkipk.build(tmp_path / "out", python_version=other))
    root = ipk.install(tmp_path / "root")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # -S: no site-packages of this host, so only the fallback can find pyprocd.
    out = subprocess.run(
        [sys.executable, "-S", str(root / "usr/bin/pyprocd"), "--version"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"pyprocd {pyprocd.__version__}"


def test_postinst_byte_compiles_and_prerm_cleans(tmp_path, built_ipk):
    # The scripts name the package dir on the router; point them at the
    # unpacked root instead and run them as default_postinst would.
    root = built_ipk.install(tmp_path / "root")
    pkg = mkipk.Package()
    package_dir = root / pkg.package_dir.lstrip("/")
    postinst = built_ipk.control_text("postinst-pkg").replace(pkg.package_dir, str(package_dir))
    prerm = built_ipk.control_text("prerm-pkg").replace(pkg.package_dir, str(package_dir))
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    env.pop("IPKG_INSTROOT", None)
    subprocess.run([*posix_shell(), "-c", postinst], env=env, check=True, timeout=300)
    assert list(package_dir.glob("__pycache__/__init__.*.pyc"))
    assert list(package_dir.glob("*/__pycache__/*.pyc"))
    subprocess.run([*posix_shell(), "-c", prerm], env=env, check=True, timeout=60)
    assert not list(package_dir.rglob("__pycache__"))
    # An image build (IPKG_INSTROOT set) has no target python3 to run.
    env["IPKG_INSTROOT"] = str(root)
    subprocess.run([*posix_shell(), "-c", postinst], env=env, check=True, timeout=60)
    assert not list(package_dir.rglob("__pycache__"))


def test_feed_index_lists_the_package(tmp_path):
    import hashlib

    ipk_path = mkipk.build(tmp_path)
    index = mkipk.write_index(ipk_path)
    text = index.read_text()
    assert text.endswith("\n\n")
    fields = dict(line.split(": ", 1) for line in text.strip().splitlines())
    raw = ipk_path.read_bytes()
    assert fields["Filename"] == ipk_path.name
    assert int(fields["Size"]) == len(raw)
    assert fields["SHA256sum"] == hashlib.sha256(raw).hexdigest()
    control = Ipk(ipk_path).fields()
    assert {k: v for k, v in fields.items() if k in control} == control
    assert list(fields)[-1] == "Description"
    assert gzip.decompress((tmp_path / "Packages.gz").read_bytes()).decode() == text


def test_make_ipk_target_writes_dist(tmp_path):
    # The Makefile target is the documented command; run it with dist/ elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    out = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "ipk", f"PYTHON={sys.executable}", f"IPK_OUT={tmp_path}"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert out.returncode == 0, out.stderr
    built = list(tmp_path.glob("pyprocd_*_all.ipk"))
    assert len(built) == 1 and str(built[0]) in out.stdout
    assert f"Filename: {built[0].name}" in (tmp_path / "Packages").read_text()
