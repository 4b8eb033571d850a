"""The layers of DESIGN.md, checked on the source: dependencies point down only.

Every import of a `pyprocd` module is read from the syntax tree, function-level
imports and `importlib.import_module("pyprocd....")` strings included, so a
lazy import cannot hide an upward dependency. A new top-level module or folder
must be given its place in ALLOWED before it can land.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# layer -> the layers (or single modules) it may import. Its own layer is always allowed.
BOTTOM = {"common"}
ALLOWED = {
    "common": set(),
    "wire": BOTTOM,
    "loop": BOTTOM,
    "bus": BOTTOM | {"wire", "loop"},
    "uci": BOTTOM | {"wire", "loop", "bus"},  # reload-config sends its events over the bus
    # The core is pure logic over a clock and a host interface: no bus, no syscalls.
    "core": BOTTOM | {"wire"},
    # The process layer implements the core's host interface and nothing else of it.
    "process": BOTTOM | {"loop", "wire", "core.host", "core.status"},
    "api": BOTTOM | {"wire", "loop", "bus", "core"},
    "daemon": BOTTOM | {"wire", "loop", "bus", "uci", "core", "process", "api"},
    # Separate programs: the layers below them, never the daemon's internals.
    "trace": BOTTOM | {"wire", "loop", "process"},
    # The warm CLI server (prefork/cli.py) preloads the commands it serves.
    "prefork": BOTTOM | {"wire", "loop", "process", "cli", "bus", "uci", "initd"},
    # the kit's installed commands (initd/commands.py) are `pyprocd SUBCOMMAND` entry points
    "initd": BOTTOM | {"wire", "loop", "bus", "uci", "process", "cli"},
    # Entry points: anything.
    "cli": None,
    "__main__": None,
    "demo": None,
    "pyprocd": None,  # the package's face (__init__): its version only
}


def module_name(path, src=SRC):
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path, src=SRC):
    """Absolute names of every pyprocd module this file imports, wherever the import sits."""
    mod = module_name(path, src)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            for alias in node.names:  # the name may be a submodule: keep it
                yield node.lineno, f"{name}.{alias.name}"
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def layer_of(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "pyprocd"


def permitted(source_layer, target):
    allowed = ALLOWED[source_layer]
    if allowed is None:
        return True
    parts = target.split(".")[1:]
    if not parts or parts[0] == source_layer:
        return True
    return parts[0] in allowed or ".".join(parts[:2]) in allowed


def all_modules():
    return sorted(SRC.joinpath("pyprocd").rglob("*.py"))


def test_every_layer_has_a_place():
    unknown = {layer_of(module_name(p)) for p in all_modules()} - set(ALLOWED)
    assert not unknown, f"new layer(s) {sorted(unknown)}: give them a place in ALLOWED"


def test_no_module_imports_upwards():
    upward = []
    for path in all_modules():
        source = layer_of(module_name(path))
        for line, target in imported_names(path):
            if target.startswith("pyprocd") and not permitted(source, target):
                upward.append(f"{path.relative_to(SRC)}:{line} ({source}) imports {target}")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_the_checker_sees_lazy_relative_and_dynamic_imports(tmp_path):
    """The checker itself: function-level, relative and import_module imports all count."""
    probe = tmp_path / "pyprocd" / "core" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    from pyprocd.daemon import main\n"
                     "def g():\n    import importlib\n"
                     "    importlib.import_module('pyprocd.bus.client')\n"
                     "from ..process import spawn\nfrom . import status\n")
    found = [name for _, name in imported_names(probe, tmp_path)]
    assert sorted(found) == ["importlib", "pyprocd.bus.client", "pyprocd.core.status",
                             "pyprocd.daemon.main", "pyprocd.process.spawn"]
    refused = {name for name in found if name.startswith("pyprocd") and not permitted("core", name)}
    assert refused == {"pyprocd.daemon.main", "pyprocd.bus.client", "pyprocd.process.spawn"}
