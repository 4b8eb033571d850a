#!/usr/bin/env python3
"""Build pyprocd_<version>-r<release>_all.ipk without the OpenWrt SDK.

    python3 tools/ipk/mkipk.py [--out DIR] [--python-version X.Y]

What goes in the package comes from openwrt/manifest.mk, the file the feed
Makefile (feeds/pyprocd/pyprocd/Makefile) includes too; the version comes from
src/pyprocd/__init__.py. Pure standard library (tarfile, gzip), so it runs on
any host, and deterministic: sorted entries, one fixed mtime
(SOURCE_DATE_EPOCH if set), uid/gid 0, gzip without name or time stamp.

The layout is the one OpenWrt's scripts/ipkg-build writes and opkg installs:
an outer gzipped tar holding ./debian-binary ("2.0"), ./data.tar.gz and
./control.tar.gz, in that order; Installed-Size is the byte size of the
uncompressed data tar; postinst/prerm are OpenWrt's stubs that run
default_postinst/default_prerm (enable + start the init script, stop +
disable it on removal), which in turn run our postinst-pkg/prerm-pkg.

The Python modules ship as sources: the router's own python3 byte-compiles
them in postinst-pkg (see openwrt/README.md for the measurements behind it).
Beside the .ipk it writes Packages and Packages.gz, so the output directory
is an opkg feed (`src/gz pyprocd <URL of the directory>`).
"""

import argparse
import ast
import gzip
import io
import os
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "openwrt" / "manifest.mk"
FILES_DIR = ROOT / "openwrt" / "files"
SRC_DIR = ROOT / "src"

# 2024-01-01T00:00:00Z: the mtime of every entry unless SOURCE_DATE_EPOCH says.
DEFAULT_EPOCH = 1704067200

POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""

PRERM = """#!/bin/sh
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""

# Sourced by default_postinst on the router after the files are in place.
POSTINST_PKG = """#!/bin/sh
# Byte-compile pyprocd with the router's own python3, which never writes
# bytecode by itself on OpenWrt: start-up then reads .pyc instead of
# compiling every module again. Image builds (IPKG_INSTROOT set) have no
# target interpreter to run; there the sources are compiled at each start.
[ -n "${{IPKG_INSTROOT}}" ] && exit 0
python3 -m compileall -q "{package_dir}" >/dev/null 2>&1 || true
exit 0
"""

# Sourced by default_prerm: the .pyc files are not in the package's file
# list, so opkg would leave them (and their directories) behind. On an
# image root (`opkg -o ROOT remove`, IPKG_INSTROOT set) the paths are the
# image's, never the build machine's.
PRERM_PKG = """#!/bin/sh
dir="${{IPKG_INSTROOT}}{package_dir}"
rm -rf "$dir"/__pycache__ "$dir"/*/__pycache__ "$dir"/*/*/__pycache__
exit 0
"""


def read_manifest(path=MANIFEST):
    """Parse the `NAME:=value` lines of manifest.mk (with \\ continuations)."""
    values = {}
    pending = ""
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        name, sep, value = line.partition(":=")
        if not sep or not re.fullmatch(r"[A-Z0-9_]+", name.strip()):
            raise ValueError(f"{path}: not a NAME:=value line: {raw!r}")
        values[name.strip()] = " ".join(value.split())
    if pending:
        raise ValueError(f"{path}: file ends inside a continued line")
    return values


def read_version(init_py=SRC_DIR / "pyprocd" / "__init__.py"):
    """pyprocd.__version__, read without importing the package."""
    tree = ast.parse(Path(init_py).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise ValueError(f"{init_py}: no __version__")


def _is_scratch(name):
    """Editor and VCS leftovers, dropped like OpenWrt's package-ipkg.mk does."""
    return name in ("CVS", ".svn", ".git") or name.startswith(".#") or name.endswith("~")


class Package:
    """Everything the package is made of, resolved from the manifest."""

    def __init__(self, manifest=None, python_version=None):
        m = manifest if manifest is not None else read_manifest()
        self.manifest = m
        self.name = "pyprocd"
        # <version>-r<release>: how OpenWrt 24.10 (and apk after it) spells a
        # package version; 23.05's build wrote <version>-<release>.
        self.version = f"{read_version()}-r{m['PYPROCD_RELEASE']}"
        self.python_version = python_version or m["PYPROCD_IPK_PYTHON_VERSION"]
        self.site_packages = f"/usr/lib/python{self.python_version}/site-packages"
        self.python_package = m["PYPROCD_PYTHON_PACKAGE"]
        self.package_dir = f"{self.site_packages}/{self.python_package}"
        self.depends = m["PYPROCD_DEPENDS"].split()
        self.conffiles = m["PYPROCD_CONFFILES"].split()
        self.files = []  # (path on router, mode, source path)
        for entry in m["PYPROCD_FILES"].split():
            dest, mode = entry.rsplit(":", 1)
            self.files.append((dest, int(mode, 8), FILES_DIR / dest.lstrip("/")))

    def python_sources(self):
        """(path on router, source path) of every file of the Python package."""
        top = SRC_DIR / self.python_package
        found = []
        for path in sorted(top.rglob("*")):
            rel = path.relative_to(top)
            if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
                continue
            if any(_is_scratch(part) for part in rel.parts):
                continue
            found.append((f"{self.package_dir}/{rel.as_posix()}", path))
        return found

    def data_files(self):
        """(path on router, mode, bytes) of every file in data.tar.gz, sorted."""
        entries = [(dest, mode, src.read_bytes()) for dest, mode, src in self.files]
        entries += [(dest, 0o644, src.read_bytes()) for dest, src in self.python_sources()]
        return sorted(entries)

    def control_fields(self, installed_size):
        m = self.manifest
        return [
            ("Package", self.name),
            ("Version", self.version),
            ("Depends", ", ".join(self.depends)),
            ("License", m["PYPROCD_LICENSE"]),
            ("Section", m["PYPROCD_SECTION"]),
            ("Maintainer", m["PYPROCD_MAINTAINER"]),
            ("Architecture", "all"),
            ("Installed-Size", str(installed_size)),
            ("Description", m["PYPROCD_DESCRIPTION"]),
        ]

    def control_files(self, installed_size):
        control = "".join(f"{k}: {v}\n" for k, v in self.control_fields(installed_size))
        return [
            ("conffiles", 0o644, "".join(f"{c}\n" for c in self.conffiles)),
            ("control", 0o644, control),
            ("postinst", 0o755, POSTINST),
            ("postinst-pkg", 0o755, POSTINST_PKG.format(package_dir=self.package_dir)),
            ("prerm", 0o755, PRERM),
            ("prerm-pkg", 0o755, PRERM_PKG.format(package_dir=self.package_dir)),
        ]

    @property
    def filename(self):
        return f"{self.name}_{self.version}_all.ipk"


def source_epoch():
    return int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))


def _parent_dirs(paths):
    dirs = set()
    for p in paths:
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs)


def _tar_bytes(files, mtime):
    """A GNU tar of `./`, its directories and files, as ipkg-build makes it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        names = ["."] + [f"./{d}" for d in _parent_dirs(p for p, _, _ in files)]
        entries = [(n, None, None) for n in names]
        entries += [("./" + p.lstrip("/"), mode, data) for p, mode, data in files]
        for name, mode, data in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name if data is not None else name + "/")
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = mode
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _gzip(data):
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return out.getvalue()


def build(out_dir, python_version=None):
    """Write the .ipk into out_dir; return its path."""
    pkg = Package(python_version=python_version)
    mtime = source_epoch()
    data_tar = _tar_bytes(pkg.data_files(), mtime)
    control = [(name, mode, text.encode()) for name, mode, text in pkg.control_files(len(data_tar))]
    members = [
        ("debian-binary", 0o644, b"2.0\n"),
        ("data.tar.gz", 0o644, _gzip(data_tar)),
        ("control.tar.gz", 0o644, _gzip(_tar_bytes(control, mtime))),
    ]
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode, data in members:  # ipkg-build's order, not sorted
            info = tarfile.TarInfo("./" + name)
            info.mtime, info.mode, info.size = mtime, mode, len(data)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / pkg.filename
    path.write_bytes(_gzip(outer.getvalue()))
    return path


def write_index(ipk_path):
    """Packages and Packages.gz beside the .ipk: an opkg feed of one package.

    The stanza is the package's control file with Filename, Size and
    SHA256sum before Description, as OpenWrt's ipkg-make-index.sh writes it.
    """
    import hashlib

    ipk_path = Path(ipk_path)
    raw = ipk_path.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw)), mode="r:") as outer:
        control_tar = gzip.decompress(outer.extractfile("./control.tar.gz").read())
    with tarfile.open(fileobj=io.BytesIO(control_tar), mode="r:") as tar:
        control = tar.extractfile("./control").read().decode()
    extra = (f"Filename: {ipk_path.name}\nSize: {len(raw)}\n"
             f"SHA256sum: {hashlib.sha256(raw).hexdigest()}\n")
    stanza = control.replace("\nDescription:", "\n" + extra + "Description:", 1)
    index = stanza.rstrip("\n") + "\n\n"
    (ipk_path.parent / "Packages").write_text(index)
    (ipk_path.parent / "Packages.gz").write_bytes(_gzip(index.encode()))
    return ipk_path.parent / "Packages"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="output directory (dist/)")
    parser.add_argument(
        "--python-version",
        help="X.Y of the router's python3, for the site-packages path "
        "(default PYPROCD_IPK_PYTHON_VERSION of openwrt/manifest.mk)",
    )
    args = parser.parse_args(argv)
    path = build(args.out, args.python_version)
    write_index(path)
    print(f"{path} ({path.stat().st_size} bytes), feed index {path.parent}/Packages(.gz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
