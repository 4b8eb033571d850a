"""pyprocd's short-lived commands through prefork-interp: `ubus`, `uci`, `jshn`, ...

    prefork-interp -U python3 /path/to/pyprocd/prefork/cli.py ubus call service list

The first call imports the command modules and becomes a prefork server; each
later call from the same directory is a fork of it, so an init script on a slow
router does not pay a cold interpreter start per `ubus`/`uci`/`jshn` call.
Without prefork-interp the same file runs as an ordinary `pyprocd` command.
The server quits after PYPROCD_PREFORK_IDLE seconds without a call (default
30): on a router a resident interpreter costs several MB.
"""

import os
import sys

# Run as a script, its own folder leads sys.path: put the package root there instead,
# so that this very copy of pyprocd is the one imported.
HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0]) == HERE:
    sys.path[0] = os.path.dirname(os.path.dirname(HERE))

import importlib

from pyprocd import cli
from pyprocd.prefork import initialisation_complete

WARM = ("pyprocd.bus.ubuscli", "pyprocd.uci.cli", "pyprocd.uci.reload", "pyprocd.initd.jshn")


def warm_up():
    for name in WARM:
        try:
            importlib.import_module(name)
        except ImportError:  # a command this installation does not have
            continue


def main():
    warm_up()
    idle = float(os.environ.get("PYPROCD_PREFORK_IDLE", "30"))
    initialisation_complete(idle_timeout=idle)
    try:
        code = cli.main(sys.argv[1:])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    # A fork of the warm server has nothing to clean up: skip the interpreter's
    # finalisation, which costs more than the call itself.
    os._exit(code & 0xFF if code is not None else 0)


if __name__ == "__main__":
    main()
