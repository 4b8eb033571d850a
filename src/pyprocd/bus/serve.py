"""`pyprocd bus [-s SOCKET] [-A DIR]`: run the host bus (a ubusd replacement) in the foreground.

Options are parsed by hand: argparse alone would add ~0.6 MB to a process
that lives as long as the router is up.
"""

import signal
import sys

from pyprocd.bus.frame import DEFAULT_SOCKET

USAGE = """Usage: pyprocd bus [-s <socket>] [-A <acl dir>]
 -s <socket>:  unix socket to listen on (default {socket})
 -A <dir>:     accepted for ubusd compatibility; the host bus enforces no ACLs
"""


def parse_args(argv):
    """{'socket': path} or None (usage error / help)."""
    options = {"socket": DEFAULT_SOCKET}
    args = list(argv)
    while args:
        word = args.pop(0)
        if word in ("-s", "-A") and args:
            value = args.pop(0)
        elif word[:2] in ("-s", "-A") and len(word) > 2:
            word, value = word[:2], word[2:]
        else:
            return None
        if word == "-s":
            options["socket"] = value
    return options


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if options is None:
        sys.stderr.write(USAGE.format(socket=DEFAULT_SOCKET))
        return 1
    from pyprocd.bus.broker import Broker
    from pyprocd.loop import Loop

    loop = Loop()
    try:
        broker = Broker(loop, options["socket"])
    except OSError as e:
        print(f"pyprocd bus: cannot listen on {options['socket']}: {e}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda _signum: loop.stop())
    # ubusd reloads its ACLs on SIGHUP; there are none here, but HUP must not kill the bus.
    loop.add_signal_handler(signal.SIGHUP, lambda _signum: None)
    try:
        loop.run()
    finally:
        broker.close()
        loop.close()
    return 0
