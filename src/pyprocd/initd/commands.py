"""Entry point of the commands `pyprocd kit install` writes (jshn, ubus, uci, validate_data).

    pyprocd-run.py --as ARGV0 SUBCOMMAND [ARGS...]

The wrapper passes its own $0, since the real tools name themselves by it in
messages (`/sbin/uci: Entry not found`); everything else is `pyprocd SUBCOMMAND`.
"""

import sys


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    argv0 = None
    if len(args) >= 2 and args[0] == "--as":
        argv0 = args[1]
        args = args[2:]
    if argv0 and args and args[0] == "uci":
        from pyprocd.uci.cli import main as uci_main

        return uci_main(args[1:], prog=argv0)
    from pyprocd.cli import main as pyprocd_main

    return pyprocd_main(args)


if __name__ == "__main__":
    sys.exit(main())
