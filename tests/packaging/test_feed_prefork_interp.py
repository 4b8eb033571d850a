"""The feed's optional prefork-interp recipe: feeds/pyprocd/prefork-interp/Makefile.

Run against the same stand-in of an OpenWrt build tree as the pyprocd feed
(stubs/openwrt-topdir): its fields, and its build from a tarball laid out
like chiark-utils' Debian source (placeholder files, not the real sources:
no network here), compiled by a stand-in TARGET_CC that records its command
line, checks its inputs exist and writes the output it is asked for.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests.packaging.pkg_helpers import ROOT

RECIPE = ROOT / "feeds" / "pyprocd" / "prefork-interp" / "Makefile"
TOPDIR = ROOT / "tests" / "packaging" / "stubs" / "openwrt-topdir"
# chiark-utils' cprogs/Makefile: prefork-interp is built from these, with -lnettle -luv.
SOURCES = ["prefork-interp.c", "prefork.c", "myopt.c", "common.c"]

FAKE_CC = """\
import json, os, sys
args = sys.argv[1:]
out = args[args.index("-o") + 1]
missing = [a for a in args if a.endswith(".c") and not os.path.isfile(a)]
if missing:
    sys.exit("no such source: " + " ".join(missing))
with open(os.environ["FAKE_CC_LOG"], "w") as f:
    json.dump(args, f)
with open(out, "w") as f:
    f.write("built")
"""


def make(tmp, *targets, **variables):
    if not shutil.which("make"):
        pytest.skip("GNU make not installed")
    link = tmp / "package" / "feeds" / "pyprocd" / "prefork-interp"
    if not link.exists():
        link.parent.mkdir(parents=True)
        link.symlink_to(RECIPE.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env["FAKE_CC_LOG"] = str(tmp / "cc.json")
    out = subprocess.run(
        ["make", "-s", "-C", str(link), f"TOPDIR={TOPDIR}", f"BUILD_DIR={tmp / 'build'}",
         f"MOCK_DEST={tmp / 'dest'}", *(f"{k}={v}" for k, v in variables.items()), *targets],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def fields(stdout):
    info, current = {}, None
    for line in stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "PACKAGE":
            current = info.setdefault(value, {})
        elif current is not None and key.isupper():
            current[key] = value
    return info


def test_recipe_declares_a_verifiable_debian_source(tmp_path):
    info = fields(make(tmp_path, "mock-info"))
    assert list(info) == ["prefork-interp"]
    pkg = info["prefork-interp"]
    assert pkg["PKG_NAME"] == "chiark-utils"
    assert re.fullmatch(r"\d+(\.\d+)+", pkg["PKG_VERSION"]), pkg["PKG_VERSION"]
    assert pkg["PKG_RELEASE"].isdigit()
    # Debian's pool layout: pool/main/<first letter>/<source>/<source>_<version>.tar.xz
    assert pkg["PKG_SOURCE"] == f"chiark-utils_{pkg['PKG_VERSION']}.tar.xz"
    assert pkg["PKG_SOURCE_URL"] == "@DEBIAN/pool/main/c/chiark-utils"
    assert re.fullmatch(r"[0-9a-f]{64}", pkg["PKG_HASH"]), "PKG_HASH must be a SHA-256"
    # A native Debian tarball unpacks to <source>-<version>/
    assert pkg["PKG_BUILD_DIR"].endswith(f"/chiark-utils-{pkg['PKG_VERSION']}")
    assert pkg["PKG_LICENSE"] == "GPL-3.0-or-later"
    assert pkg["PKG_MAINTAINER"] and pkg["TITLE"] and pkg["SECTION"] and pkg["CATEGORY"]
    # OpenWrt's package names of the two libraries the client links.
    assert pkg["DEPENDS"].split() == ["+libnettle", "+libuv"]
    # Machine code: no PKGARCH:=all.
    assert pkg["PKGARCH"] == ""


def test_recipe_version_is_the_client_the_tests_run():
    if not shutil.which("dpkg-query"):
        pytest.skip("no dpkg-query: not a Debian host")
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "chiark-utils-bin"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip("chiark-utils-bin is not installed (.ci/run installs it)")
    text = RECIPE.read_text()
    assert f"PKG_VERSION:={out.stdout.strip()}\n" in text


def test_recipe_builds_and_installs_only_the_client(tmp_path):
    version = fields(make(tmp_path, "mock-info"))["prefork-interp"]["PKG_VERSION"]
    dl = tmp_path / "dl"
    dl.mkdir()
    top = f"chiark-utils-{version}"
    with tarfile.open(dl / f"chiark-utils_{version}.tar.xz", "w:xz") as tar:
        for name in [*SOURCES, "watershed.c", "prefork.h"]:
            data = f"/* placeholder for {name} */\n".encode()
            entry = tarfile.TarInfo(f"{top}/cprogs/{name}")
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    fake_cc = tmp_path / "fake-cc"
    fake_cc.write_text(f"#!{sys.executable}\n{FAKE_CC}")
    fake_cc.chmod(0o755)
    make(tmp_path, "mock-install", DL_DIR=dl, TARGET_CC=fake_cc,
         TARGET_CFLAGS="-Os -DMARK_CFLAGS", TARGET_LDFLAGS="-L/mark/ldflags")
    args = json.loads((tmp_path / "cc.json").read_text())
    build = tmp_path / "build" / top
    assert [a for a in args if a.endswith(".c")] == [str(build / "cprogs" / s) for s in SOURCES]
    # the toolchain's flags, and the libraries after the sources (link order)
    assert "-DMARK_CFLAGS" in args and "-L/mark/ldflags" in args
    assert args[-2:] == ["-lnettle", "-luv"]
    installed = tmp_path / "dest" / "prefork-interp"
    files = sorted(str(p.relative_to(installed)) for p in installed.rglob("*") if p.is_file())
    assert files == ["usr/bin/prefork-interp"]
    assert (installed / "usr/bin/prefork-interp").stat().st_mode & 0o777 == 0o755
