#!/usr/bin/env python3
"""Which OpenWrt packages the modules pyprocd imports come from.

    python3 tools/ipk/stdlib_deps.py     # prints the packages, one a line

OpenWrt splits CPython's standard library: python3-light has most of it, and
the modules below live in their own python3-* packages (lang/python/python3/
files/python3-package-*.mk and python3-find-stdlib-depends.sh of the OpenWrt
packages feed). An import of one of them without the package in Depends
works on a developer's machine and fails on the router, so
tests/packaging checks every import against PYPROCD_DEPENDS.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "pyprocd"

# module (or dotted prefix) -> OpenWrt package; longest prefix wins.
SPLIT_STDLIB = {
    "asyncio": "python3-asyncio",
    "cgi": "python3-cgi",
    "cgitb": "python3-cgitb",
    "unicodedata": "python3-codecs",
    "ctypes": "python3-ctypes",
    "dbm": "python3-dbm",
    "dbm.gnu": "python3-gdbm",
    "decimal": "python3-decimal",
    "_decimal": "python3-decimal",
    "distutils": "python3-distutils",
    "email": "python3-email",
    "logging": "python3-logging",
    "lzma": "python3-lzma",
    "multiprocessing": "python3-multiprocessing",
    "curses": "python3-ncurses",
    "ssl": "python3-openssl",
    "_hashlib": "python3-openssl",
    "doctest": "python3-pydoc",
    "pydoc": "python3-pydoc",
    "readline": "python3-readline",
    "sqlite3": "python3-sqlite3",
    "unittest": "python3-unittest",
    "urllib": "python3-urllib",
    "uuid": "python3-uuid",
    "venv": "python3-venv",
    "webbrowser": "python3-webbrowser",
    "xml": "python3-xml",
    "xmlrpc": "python3-xml",
}

# Modules from outside the standard library -> OpenWrt package.
THIRD_PARTY = {
    "cffi": "python3-cffi",
    "_cffi_backend": "python3-cffi",
}


def imported_modules(package_dir=PACKAGE_DIR):
    """{module name: [file:line, ...]} of every absolute import in the package."""
    found = {}
    for path in sorted(Path(package_dir).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            for name in names:
                found.setdefault(name, []).append(where)
    return found


def package_of(module):
    """The OpenWrt package providing `module`, or None for python3-light/pyprocd."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in SPLIT_STDLIB:
            return SPLIT_STDLIB[prefix]
        if prefix in THIRD_PARTY:
            return THIRD_PARTY[prefix]
    return None


def unknown_modules(modules):
    """Imports that are neither stdlib, pyprocd, nor a known third-party module."""
    stdlib = sys.stdlib_module_names
    return sorted(
        m
        for m in modules
        if m.split(".")[0] not in stdlib
        and m.split(".")[0] != "pyprocd"
        and package_of(m) is None
    )


def required_packages(package_dir=PACKAGE_DIR):
    """{OpenWrt package: [file:line of an import needing it, ...]}."""
    needed = {}
    for module, where in imported_modules(package_dir).items():
        pkg = package_of(module)
        if pkg:
            needed.setdefault(pkg, []).extend(where)
    return needed


def main():
    for pkg, where in sorted(required_packages().items()):
        print(f"{pkg}\t{where[0]}")
    unknown = unknown_modules(imported_modules())
    if unknown:
        print("unknown imports (not stdlib, not mapped):", " ".join(unknown), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
