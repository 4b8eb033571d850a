"""`pyprocd reload-config`: OpenWrt's /sbin/reload_config in Python.

Like the shell original it renders every package of the config directory
as `uci show` does (uncommitted deltas included), compares an MD5 of each
rendering with the ones remembered in /var/run/config.md5, and sends one
`ubus call service event {"type":"config.change","data":{"package":P}}` per
package whose checksum changed or whose file disappeared. Packages seen for
the first time (or every package on the very first run) send nothing; their
checksums are recorded. The checksum file uses md5sum's format with the
same paths as the shell script (`/var/run/config.check/<pkg>`), so the two
tools can take turns.
"""

import hashlib
import os
import sys

from .model import UciError
from .store import DEFAULT_CONFDIR, DEFAULT_SAVEDIR, Store, encode

DEFAULT_MD5_FILE = "/var/run/config.md5"
CHECK_DIR = "/var/run/config.check"  # path prefix in the md5 file (as reload_config)

USAGE = """Usage: pyprocd reload-config [options]
  -c DIR        config directory (default /etc/config)
  -m FILE       checksum file (default /var/run/config.md5)
  -s SOCKET     ubus socket (default /var/run/ubus/ubus.sock)
  -o OBJECT     ubus object receiving the events (default service)
  -n            dry run: print the changed packages, send nothing, keep the checksums
"""


def render(store, name):
    """What `uci show NAME` prints on stdout (empty when the package fails)."""
    try:
        return store.load(name).show()
    except UciError:
        return ""


def checksums(confdir, savedir=None):
    """{package: md5 hex} for every regular file in confdir (like `/etc/config/*`)."""
    savedir = savedir or os.environ.get("PYPROCD_UCI_SAVEDIR", DEFAULT_SAVEDIR)
    store = Store(confdir=confdir, conf2dir="", savedir=savedir)
    try:
        names = sorted(os.listdir(confdir))
    except OSError:
        return {}
    sums = {}
    for name in names:
        if name.startswith(".") or not os.path.isfile(os.path.join(confdir, name)):
            continue
        sums[name] = hashlib.md5(encode(render(store, name))).hexdigest()
    return sums


def read_md5_file(path):
    """{package: md5} from an md5sum-style file; {} if it does not exist."""
    sums = {}
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "surrogateescape").splitlines()
    except OSError:
        return None
    for line in lines:
        digest, _, file_path = line.partition("  ")
        if digest and file_path:
            sums[file_path.rsplit("/", 1)[-1]] = digest
    return sums


def write_md5_file(path, sums):
    text = "".join(f"{digest}  {CHECK_DIR}/{name}\n" for name, digest in sorted(sums.items()))
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(encode(text))
    os.replace(tmp, path)


def changed_packages(old, new):
    """Packages to announce: checksum differs, or the file is gone (md5sum -c FAILED)."""
    if old is None:
        return []
    return sorted(name for name, digest in old.items() if new.get(name) != digest)


def reload_config(confdir, md5_file, send, savedir=None, dry_run=False):
    """Find the changed packages and `send(type, data)` one config.change each.

    Returns the list of changed packages. `send` is pluggable: the CLI uses
    the ubus client; tests and the daemon can pass their own.
    """
    new = checksums(confdir, savedir)
    changed = changed_packages(read_md5_file(md5_file), new)
    if dry_run:
        return changed
    for name in changed:
        send("config.change", {"package": name})
    write_md5_file(md5_file, new)
    return changed


def ubus_sender(socket_path, object_name="service", timeout=30):
    """A send(type, data) that calls `<object> event` over ubus (blocking)."""
    from pyprocd.bus.client import BlockingUbus

    bus = BlockingUbus(socket_path, timeout=timeout)

    def send(type_, data):
        status, _ = bus.call(object_name, "event", {"type": type_, "data": data})
        if status:
            raise OSError(f"ubus call {object_name} event failed with status {status}")

    send.close = bus.close
    return send


def main(argv=None):
    import getopt

    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, args = getopt.getopt(argv, "c:m:s:o:nh")
    except getopt.GetoptError as e:
        sys.stderr.write(f"reload-config: {e.msg}\n{USAGE}")
        return 2
    options = dict(opts)
    if "-h" in options or args:
        sys.stderr.write(USAGE)
        return 0 if "-h" in options else 2
    confdir = options.get("-c", DEFAULT_CONFDIR)
    md5_file = options.get("-m", os.environ.get("PYPROCD_CONFIG_MD5", DEFAULT_MD5_FILE))
    if "-n" in options:
        for name in reload_config(confdir, md5_file, None, dry_run=True):
            print(name)
        return 0
    from pyprocd.bus.frame import DEFAULT_SOCKET

    sender = None
    try:
        sender = ubus_sender(options.get("-s", DEFAULT_SOCKET), options.get("-o", "service"))
        reload_config(confdir, md5_file, sender)
    except (OSError, ConnectionError) as e:
        sys.stderr.write(f"reload-config: {e}\n")
        return 1
    finally:
        if sender is not None:
            sender.close()
    return 0
