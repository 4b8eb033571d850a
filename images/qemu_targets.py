"""The emulated routers: what each one boots and which Debian packages make it.

A target's recipe (everything but `qemu`, which only matters at boot time) is
hashed into the cache key of its base image: change a package or the suite
here and the next run rebuilds that target's base, nothing else.
"""

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# What the guest runs: busybox as /bin/sh and userland (OpenWrt's shell is
# busybox ash), python3 + cffi (pyprocd's runtime), pytest for the project's
# own process-layer tests; chiark-utils' prefork-interp client, which init
# scripts use to run pyprocd's short commands through a warm interpreter (its
# binary links libnettle and libuv, only Recommends of the package, and
# mmdebstrap installs no Recommends).
PACKAGES = [
    "dpkg", "busybox", "libc-bin", "base-files", "base-passwd", "debianutils",
    "python3", "python3-cffi", "python3-pytest",
    "chiark-utils-bin", "libnettle8", "libuv1",
]

# Dropped from the root before packing: docs, locales, charset converters,
# apt state, and the parts of the standard library no router python has.
PRUNE = [
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
    "usr/share/lintian", "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf",
    "usr/lib/*/gconv", "usr/lib/python3.11/test", "usr/lib/python3.11/idlelib",
    "usr/lib/python3.11/lib2to3", "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/pydoc_data", "usr/lib/python3.11/tkinter",
    "usr/lib/python3.11/config-3.11-*",
]


class Target:
    def __init__(self, name, debian_arch, kernel_meta, kernel_suffix, qemu, console,
                 append="", user_emulator=""):
        self.name = name
        self.debian_arch = debian_arch
        self.kernel_meta = kernel_meta          # Debian meta package of the kernel flavour
        self.kernel_suffix = kernel_suffix      # appended to the versioned package it names
        self.qemu = qemu                        # argv prefix, without kernel/initrd
        self.console = console
        self.append = append
        self.user_emulator = user_emulator      # qemu-user binary for host-side checks

    def recipe(self):
        """The inputs of the base image (hashed into its cache key)."""
        return {
            "arch": self.debian_arch, "suite": SUITE, "mirror": MIRROR,
            "packages": PACKAGES, "prune": PRUNE,
            "kernel": [self.kernel_meta, self.kernel_suffix],
        }


COMMON = ["-smp", "1", "-nographic", "-monitor", "none", "-nic", "none", "-no-reboot"]

TARGETS = {
    # OpenWrt malta/le. The default 24Kf CPU makes Python 10-50x slower.
    "mipsel": Target(
        "mipsel", "mipsel", "linux-image-4kc-malta", "",
        ["qemu-system-mipsel", "-M", "malta", "-cpu", "34Kf", "-vga", "none", "-m", "256"]
        + COMMON, "ttyS0", user_emulator="qemu-mipsel-static"),
    # OpenWrt armvirt/32; the non-LPAE armmp kernel needs highmem off.
    "armhf": Target(
        "armhf", "armhf", "linux-image-armmp", "",
        ["qemu-system-arm", "-M", "virt,highmem=off", "-cpu", "cortex-a15", "-m", "256"]
        + COMMON, "ttyAMA0", user_emulator="qemu-arm-static"),
    # OpenWrt armvirt/64. 512 MB: in 256 the root file system (in RAM) left room for
    # only 7 cold 64-bit Python services, and the warm-start figure is about 10.
    # cma=0 keeps the CMA reservation from starving the initramfs unpacking.
    "arm64": Target(
        "arm64", "arm64", "linux-image-arm64", "-unsigned",
        ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "512"]
        + COMMON, "ttyAMA0", append="cma=0", user_emulator="qemu-aarch64-static"),
}
