"""`pyprocd bus [-s SOCKET] [-A DIR]`: run the host bus (a ubusd replacement) in the foreground.

Options are parsed by hand: argparse alone would add ~0.6 MB to a process
that lives as long as the router is up.
"""

import signal
import sys

from pyprocd.bus.frame import DEFAULT_SOCKET

USAGE = """Usage: pyprocd bus [-s <socket>] [-A <acl dir>]
 -s <socket>:  unix socket to listen on (default {socket})
 -A <dir>:     enforce ubusd's ACL files from <dir> (SIGHUP reloads them);
               without -A every client may do everything
"""


def parse_args(argv):
    """{'socket': path, 'acl_dir': dir or None} or None (usage error / help)."""
    options = {"socket": DEFAULT_SOCKET, "acl_dir": None}
    args = list(argv)
    while args:
        word = args.pop(0)
        if word in ("-s", "-A") and args:
            value = args.pop(0)
        elif word[:2] in ("-s", "-A") and len(word) > 2:
            word, value = word[:2], word[2:]
        else:
            return None
        options["socket" if word == "-s" else "acl_dir"] = value
    return options


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if options is None:
        sys.stderr.write(USAGE.format(socket=DEFAULT_SOCKET))
        return 1
    from pyprocd.bus.broker import Broker
    from pyprocd.loop import Loop

    loop = Loop()
    acl = None
    if options["acl_dir"] is not None:
        from pyprocd.bus.acl import Acl

        acl = Acl(options["acl_dir"], log=lambda text: print(f"pyprocd bus: {text}",
                                                              file=sys.stderr, flush=True))
        acl.load()
    try:
        broker = Broker(loop, options["socket"], acl=acl)
    except OSError as e:
        print(f"pyprocd bus: cannot listen on {options['socket']}: {e}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda _signum: loop.stop())
    # like ubusd: SIGHUP reloads the ACL files (and never kills the bus)
    loop.add_signal_handler(signal.SIGHUP, lambda _signum: broker.reload_acl())
    try:
        loop.run()
    finally:
        broker.close()
        loop.close()
    return 0
