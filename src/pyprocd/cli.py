"""Command line entry point: `pyprocd [SUBCOMMAND] ...`.

Subcommands are imported lazily so that each one loads only the modules it
needs: on a router every imported module costs RAM in a long-lived process.
"""

import sys

# subcommand -> "module:function"; the function takes argv (list of str)
# without the subcommand word and returns an exit code.
SUBCOMMANDS = {
    "bus": "pyprocd.bus.serve:main",
    "ubus": "pyprocd.bus.ubuscli:main",
    "uci": "pyprocd.uci.cli:main",
    "reload-config": "pyprocd.uci.reload:main",
    "trace": "pyprocd.trace.cli:main",
    "jshn": "pyprocd.initd.jshn:main",
    "validate_data": "pyprocd.initd.validate:main",
    "kit": "pyprocd.initd.install:main",
    "initd": "pyprocd.initd.run:main",
}
DAEMON = "pyprocd.daemon.main:main"


def _load(target):
    module, func = target.split(":")
    # __import__, not importlib: that package (and `warnings`) would stay in
    # the daemon's memory for its whole life.
    __import__(module)
    return getattr(sys.modules[module], func)


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in ("--version", "-V"):
        from pyprocd import __version__

        print(f"pyprocd {__version__}")
        return 0
    if argv and argv[0] in SUBCOMMANDS:
        return _load(SUBCOMMANDS[argv[0]])(argv[1:])
    return _load(DAEMON)(argv)
