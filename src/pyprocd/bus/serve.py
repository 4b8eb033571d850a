"""`pyprocd bus [-s SOCKET]`: run the host bus (a ubusd replacement) in the foreground."""

import argparse
import signal
import sys

from pyprocd.bus.frame import DEFAULT_SOCKET


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="pyprocd bus", description="ubusd-compatible host bus")
    parser.add_argument("-s", dest="socket", default=DEFAULT_SOCKET, help="unix socket path")
    parser.add_argument("-A", dest="acl_dir", default=None,
                        help="ACL directory (accepted for ubusd compatibility; ACLs are not"
                             " enforced by the host bus)")
    return parser.parse_args(argv)


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    from pyprocd.bus.broker import Broker
    from pyprocd.loop import Loop

    loop = Loop()
    try:
        broker = Broker(loop, options.socket)
    except OSError as e:
        print(f"pyprocd bus: cannot listen on {options.socket}: {e}", file=sys.stderr)
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
