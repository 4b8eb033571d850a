"""Every module pyprocd imports is on the router once Depends is installed.

OpenWrt's python3-light lacks part of the standard library (logging, email,
ctypes, ... are separate python3-* packages); an import of one of them
without the package in PYPROCD_DEPENDS works here and fails on the router.
"""

import sys

from tests.packaging.pkg_helpers import ROOT, mkipk

sys.path.insert(0, str(ROOT / "tools" / "ipk"))
import stdlib_deps  # tools/ipk is not a package


def test_imports_are_covered_by_depends():
    depends = set(mkipk.read_manifest()["PYPROCD_DEPENDS"].split())
    needed = stdlib_deps.required_packages()
    missing = {pkg: where for pkg, where in needed.items() if pkg not in depends}
    assert not missing, (
        "add these to PYPROCD_DEPENDS in openwrt/manifest.mk (or drop the imports): "
        + "; ".join(f"{pkg} for {', '.join(where[:3])}" for pkg, where in sorted(missing.items()))
    )


def test_no_unknown_third_party_imports():
    unknown = stdlib_deps.unknown_modules(stdlib_deps.imported_modules())
    assert unknown == [], f"imports that no OpenWrt package is known to provide: {unknown}"


def test_depends_are_all_needed():
    # python3-light is the interpreter; every other entry must be imported.
    depends = set(mkipk.read_manifest()["PYPROCD_DEPENDS"].split()) - {"python3-light"}
    assert depends <= set(stdlib_deps.required_packages())


def test_module_map_follows_openwrt_split():
    assert stdlib_deps.package_of("logging.handlers") == "python3-logging"
    assert stdlib_deps.package_of("dbm.gnu") == "python3-gdbm"
    assert stdlib_deps.package_of("dbm") == "python3-dbm"
    assert stdlib_deps.package_of("xml.etree.ElementTree") == "python3-xml"
    assert stdlib_deps.package_of("json") is None  # in python3-light
    assert stdlib_deps.package_of("cffi") == "python3-cffi"
