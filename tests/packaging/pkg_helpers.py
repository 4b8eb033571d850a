"""Helpers for the packaging tests: open a built .ipk, find a POSIX shell."""

import gzip
import io
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "ipk"))

import mkipk  # tools/ipk is not a package

__all__ = ["ROOT", "Ipk", "mkipk", "posix_shell", "read_tar_gz"]


def posix_shell():
    """busybox ash (what OpenWrt runs) if installed, else dash; argv prefix."""
    if shutil.which("busybox"):
        return ["busybox", "ash"]
    if shutil.which("dash"):
        return ["dash"]
    pytest.skip("neither busybox nor dash installed (apt-get install busybox)")


def read_tar_gz(data):
    """{member name: (TarInfo, bytes or None)} of a gzipped tar in memory."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
        for info in tar.getmembers():
            content = tar.extractfile(info).read() if info.isfile() else None
            members[info.name] = (info, content)
    return members


class Ipk:
    """A built .ipk, opened: outer members, control and data archives."""

    def __init__(self, path):
        self.path = Path(path)
        self.raw = self.path.read_bytes()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(self.raw)), mode="r:") as tar:
            self.outer_infos = tar.getmembers()
            self.outer = {i.name: tar.extractfile(i).read() for i in self.outer_infos}
        self.control = read_tar_gz(self.outer["./control.tar.gz"])
        self.data = read_tar_gz(self.outer["./data.tar.gz"])

    def control_text(self, name):
        return self.control[f"./{name}"][1].decode()

    def fields(self):
        fields = {}
        for line in self.control_text("control").splitlines():
            key, _, value = line.partition(": ")
            fields[key] = value
        return fields

    def files(self):
        """Paths on the router of the regular files, e.g. /etc/init.d/pyprocd."""
        return sorted(n[1:] for n, (info, _) in self.data.items() if info.isfile())

    def install(self, root):
        """Write the data tree under root, as opkg would on the router."""
        root = Path(root)
        for name, (info, content) in sorted(self.data.items()):
            target = root / name.lstrip("./")
            if info.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                assert info.isfile(), f"unexpected member type {name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                target.chmod(info.mode)
        return root
