"""Build a target's boot files: a cached Debian base and a fresh payload.

base (cached, keyed by the target's recipe, see qemu_targets.py):
    mmdebstrap of the target's Debian packages (root mode; maintainer
    scripts run under qemu-user through binfmt), the kernel package's
    vmlinuz fetched with the same apt state, then pruned and packed as a
    plain newc cpio (compressed ones unpack slowly under MIPS TCG).
payload (rebuilt every run, about a second):
    pyprocd installed from the .ipk the way opkg installs it, the guest's
    init and the scenarios, as a second cpio appended to the base.

The cache lives outside the checkout: $PYPROCD_QEMU_CACHE, else
$XDG_CACHE_HOME/pyprocd-qemu, else ~/.cache/pyprocd-qemu.
"""

import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from qemu_targets import MIRROR, PACKAGES, PRUNE, SECURITY_MIRROR, SUITE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GUEST = HERE / "guest"
SCENARIOS = HERE / "scenarios"

# Project tests that run natively in the guest (the process layer).
GUEST_TESTS = ["tests/__init__.py", "tests/conftest.py", "tests/process", "tests/core"]
SITE = "/usr/lib/python3.11/site-packages"


def cache_root():
    explicit = os.environ.get("PYPROCD_QEMU_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "pyprocd-qemu"


def recipe_key(target):
    text = json.dumps(target.recipe(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def log(msg):
    print(f"[qemu-test] {msg}", file=sys.stderr, flush=True)


# -- base image ----------------------------------------------------------------

# Runs in mmdebstrap's customize phase with its apt state: fetch the kernel
# package the meta package points at, keep only /boot/vmlinuz-*.
KERNEL_HOOK = r"""set -e
export APT_CONFIG="$MMDEBSTRAP_APT_CONFIG"
dest={dest}
pkg=$(apt-cache depends {meta} | awk '/Depends: linux-image-/ {{print $2; exit}}'){suffix}
mkdir -p "$dest" && cd "$dest"
apt-get download -q "$pkg" 2>&1 | tail -1
deb=$(ls "$dest"/*.deb)
dpkg-deb --fsys-tarfile "$deb" | tar -x --wildcards './boot/vmlinuz-*'
mv ./boot/vmlinuz-* "$dest/vmlinuz" && echo "$pkg" > "$dest/package"
rm -rf ./boot "$deb"
"""


def _mmdebstrap(target, rootfs, kernel_dir, with_security):
    sources = [f"deb {MIRROR} {SUITE} main", f"deb {MIRROR} {SUITE}-updates main"]
    if with_security:
        sources.append(f"deb {SECURITY_MIRROR} {SUITE}-security main")
    hook = KERNEL_HOOK.format(dest=shlex.quote(str(kernel_dir)), meta=target.kernel_meta,
                              suffix=target.kernel_suffix)
    argv = [
        "mmdebstrap", "--mode=root", "--variant=custom", f"--arch={target.debian_arch}",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        "--hook-dir=/usr/share/mmdebstrap/hooks/busybox",
        "--include=" + ",".join(PACKAGES),
        "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
        '--aptopt=Acquire::Languages "none"', "--customize-hook=" + hook,
        "--quiet", SUITE, str(rootfs), *sources,
    ]
    # Its hooks and maintainer scripts are chatty: the output goes to a log
    # beside the base, shown when the build fails.
    log_path = rootfs.parent / "mmdebstrap.log"
    with open(log_path, "ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        log(f"{target.name}: mmdebstrap exited {done.returncode}; last lines of {log_path}:\n  "
            + "\n  ".join(tail))
    return done.returncode == 0


def _prune(rootfs):
    for pattern in PRUNE:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    # OpenWrt's python3 has <prefix>/lib/python3.X/site-packages on its path,
    # where the .ipk puts pyprocd; Debian's has dist-packages only.
    pth = rootfs / "usr/lib/python3/dist-packages/openwrt-site-packages.pth"
    pth.write_text(SITE + "\n")
    (rootfs / SITE.lstrip("/")).mkdir(parents=True, exist_ok=True)


def _pack_dir(rootfs, out):
    """newc cpio of a directory with find | cpio, padded to 4 bytes."""
    with open(out, "wb") as f:
        names = subprocess.run("find . | LC_ALL=C sort", shell=True, cwd=rootfs, check=True,
                               capture_output=True).stdout
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=rootfs,
                       input=names, stdout=f, check=True)
    _pad4(out)


def _pad4(path):
    size = path.stat().st_size
    if size % 4:
        with open(path, "ab") as f:
            f.write(b"\0" * (4 - size % 4))


class Base:
    """A target's cached base: rootfs/ (for host-side use), vmlinuz, base.cpio."""

    def __init__(self, target):
        self.target = target
        self.dir = cache_root() / target.name / f"base-{recipe_key(target)}"
        self.rootfs = self.dir / "rootfs"
        self.kernel = self.dir / "kernel" / "vmlinuz"
        self.cpio = self.dir / "base.cpio"
        self.stamp = self.dir / "complete"

    def ready(self):
        return self.stamp.exists()

    def build(self):
        if self.ready():
            return self
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        started = time.monotonic()
        log(f"{self.target.name}: building the Debian base in {self.dir}")
        ok = _mmdebstrap(self.target, self.rootfs, self.kernel.parent, with_security=True)
        if not ok:
            # Seen on mirrors: a security index served with the wrong size.
            log(f"{self.target.name}: retrying without {SUITE}-security")
            shutil.rmtree(self.rootfs, ignore_errors=True)
            shutil.rmtree(self.kernel.parent, ignore_errors=True)
            if not _mmdebstrap(self.target, self.rootfs, self.kernel.parent,
                               with_security=False):
                raise SystemExit(f"{self.target.name}: mmdebstrap failed")
        _prune(self.rootfs)
        _pack_dir(self.rootfs, self.cpio)
        (self.dir / "recipe.json").write_text(json.dumps(self.target.recipe(), indent=1))
        self.stamp.write_text(f"{time.monotonic() - started:.1f}\n")
        log(f"{self.target.name}: base built in {time.monotonic() - started:.0f} s "
            f"({self.cpio.stat().st_size >> 20} MiB cpio)")
        return self

    def python_version(self):
        found = sorted(self.rootfs.glob("usr/bin/python3.[0-9]*"))
        return found[0].name[len("python"):] if found else None


# -- payload ---------------------------------------------------------------------

# The base is merged-/usr: these are symlinks there. The kernel replaces an
# existing entry of another type when it unpacks an appended archive, so a
# payload directory `lib` would cut the base's /lib -> usr/lib link (and
# every program with it); the payload writes through the link instead.
MERGED_USR = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib"}


def canonical(name):
    top, sep, rest = name.partition("/")
    return MERGED_USR[top] + sep + rest if top in MERGED_USR else name


class Newc:
    """A minimal newc cpio writer: directories, files, symlinks, device nodes."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1000
        self.seen = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0), mtime=None):
        self.ino += 1
        name = canonical(name)
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, int(mtime if mtime is not None else time.time()),
                  len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.buf.write(b"070701" + b"".join(b"%08X" % v for v in fields))
        self.buf.write(name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dirs_for(self, name):
        parts = canonical(name).split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.seen:
                self.seen.add(d)
                self._entry(d, stat.S_IFDIR | 0o755)

    def add_dir(self, name, mode=0o755):
        self.dirs_for(name)
        name = canonical(name)
        if name not in self.seen:
            self.seen.add(name)
            self._entry(name, stat.S_IFDIR | mode)

    def add_file(self, name, data, mode=0o644, mtime=None):
        self.dirs_for(name)
        self._entry(name, stat.S_IFREG | mode, data, mtime=mtime)

    def add_symlink(self, name, target):
        self.dirs_for(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, name, major, minor, mode=0o600):
        self.dirs_for(name)
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def add_tree(self, src, dest, mode_of=None):
        for path in sorted(Path(src).rglob("*")):
            rel = path.relative_to(src)
            if "__pycache__" in rel.parts or path.suffix == ".pyc":
                continue
            name = f"{dest}/{rel.as_posix()}"
            if path.is_dir():
                self.add_dir(name)
            else:
                mode = path.stat().st_mode & 0o777
                self.add_file(name, path.read_bytes(), mode, mtime=path.stat().st_mtime)

    def finish(self):
        self._entry("TRAILER!!!", 0)
        data = self.buf.getvalue()
        return data + b"\0" * (-len(data) % 512)


def read_ipk(path):
    """(control members {name: (TarInfo, bytes)}, data members) of an .ipk."""
    def members(raw):
        out = {}
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw)), mode="r:") as tar:
            for info in tar.getmembers():
                out[info.name] = (info, tar.extractfile(info).read() if info.isfile() else None)
        return out

    outer = members(Path(path).read_bytes())
    return members(outer["./control.tar.gz"][1]), members(outer["./data.tar.gz"][1])


def opkg_install(ipk, image_root):
    """Install an .ipk into image_root the way `opkg -o ROOT install` does.

    Data unpacked into the root; the control files in /usr/lib/opkg/info as
    <pkg>.<name>, the file list as <pkg>.list, a status entry with the
    conffiles' md5sums; then the package's postinst-pkg runs with
    IPKG_INSTROOT=ROOT under busybox ash (default_postinst, which sources it,
    comes from OpenWrt's base-files, which a Debian image lacks).
    Returns the package name.
    """
    control, data = read_ipk(ipk)
    fields = dict(line.split(": ", 1) for line in
                  control["./control"][1].decode().splitlines() if ": " in line)
    pkg = fields["Package"]
    files = []
    for name, (info, content) in sorted(data.items()):
        rel = name.lstrip("./")
        if not rel:
            continue
        target = image_root / rel
        if info.isdir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(info.mode)
            files.append("/" + rel)
    info_dir = image_root / "usr/lib/opkg/info"
    info_dir.mkdir(parents=True, exist_ok=True)
    for name, (info, content) in control.items():
        if content is not None:
            dest = info_dir / f"{pkg}.{name.lstrip('./')}"
            dest.write_bytes(content)
            dest.chmod(info.mode)
    (info_dir / f"{pkg}.list").write_text("".join(f"{f}\n" for f in files))
    conffiles = control.get("./conffiles", (None, b""))[1].decode().split()
    status = [f"Package: {pkg}", f"Version: {fields['Version']}",
              f"Depends: {fields.get('Depends', '')}", "Status: install user installed",
              f"Architecture: {fields['Architecture']}"]
    if conffiles:
        status.append("Conffiles:")
        status += [f" {c} {hashlib.md5((image_root / c.lstrip('/')).read_bytes()).hexdigest()}"
                   for c in conffiles]
    status.append(f"Installed-Time: {int(time.time())}")
    (image_root / "usr/lib/opkg/status").write_text("\n".join(status) + "\n\n")
    postinst_pkg = info_dir / f"{pkg}.postinst-pkg"
    if postinst_pkg.exists():
        env = dict(os.environ, IPKG_INSTROOT=str(image_root), PKG_UPGRADE="0")
        subprocess.run(["busybox", "ash", str(postinst_pkg)], env=env, check=True, timeout=120)
    return pkg


# A router's accounts (OpenWrt base-files' defaults): mmdebstrap's custom
# variant leaves only root, and services run as these users.
PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:*:1:1:daemon:/var:/bin/false
ftp:*:55:55:ftp:/home/ftp:/bin/false
network:*:101:101:network:/var:/bin/false
nobody:*:65534:65534:nobody:/var:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
adm:x:4:
mail:x:8:
audio:x:29:
www-data:x:33:
ftp:x:55:
users:x:100:
network:x:101:
nogroup:x:65534:
"""


def build_ipk(out_dir):
    """`make ipk` into out_dir; the path of the .ipk."""
    subprocess.run([sys.executable, str(ROOT / "tools/ipk/mkipk.py"), "--out", str(out_dir)],
                   check=True, stdout=subprocess.DEVNULL)
    return next(Path(out_dir).glob("pyprocd_*_all.ipk"))


def build_payload(ipk, out, workdir):
    """The payload cpio: /init, the guest programs, scenarios, tests, pyprocd."""
    stage = Path(workdir) / "stage"
    stage.mkdir(parents=True)
    opkg_install(ipk, stage)
    cpio = Newc()
    for path in sorted(stage.rglob("*")):
        name = path.relative_to(stage).as_posix()
        if path.is_dir():
            cpio.add_dir(name)
        else:
            cpio.add_file(name, path.read_bytes(), path.stat().st_mode & 0o777,
                          mtime=path.stat().st_mtime)
    # The kernel opens /dev/console before /init runs.
    cpio.add_chardev("dev/console", 5, 1)
    cpio.add_chardev("dev/null", 1, 3, 0o666)
    # /init moves the root off the initramfs (jails need pivot_root), then runs
    # busybox init, which reads /etc/inittab.
    cpio.add_file("init", (GUEST / "init").read_bytes(), 0o755)
    cpio.add_file("etc/inittab", (GUEST / "inittab").read_bytes())
    cpio.add_file("etc/passwd", PASSWD.encode())
    cpio.add_file("etc/group", GROUP.encode())
    cpio.add_tree(GUEST, "qemu")
    cpio.add_tree(SCENARIOS, "qemu/scenarios")
    for rel in GUEST_TESTS:
        src = ROOT / rel
        if src.is_dir():
            cpio.add_tree(src, f"qemu/{rel}")
        else:
            cpio.add_file(f"qemu/{rel}", src.read_bytes(), mtime=src.stat().st_mtime)
    Path(out).write_bytes(cpio.finish())
    return Path(out)
