"""The ubus object `system`, read-only part: `board` and `info` in procd's reply shape.

procd serves `system` next to `service`; LuCI-style clients ask it for the
board and the running state. On a host where pyprocd runs on its own bus
these answer from /proc, statvfs and /etc/os-release. Where procd is there
(a router), registering the name fails and procd keeps answering: that is
logged and nothing else changes. The state-changing methods (reboot,
watchdog, signal, sysupgrade) are procd's business and are not offered.

    board: kernel, hostname, system, model, board_name, rootfs_type,
           release {distribution, version, revision, target, description}
    info:  localtime, uptime, load [3], memory {total, free, shared,
           buffered, available, cached}, root/tmp {total, free, used, avail}
           (KiB), swap {total, free}
"""

import os
import time

from pyprocd.bus.client import UbusObject
from pyprocd.wire.types import Int64

LOG_NOTICE = 5
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
# /etc/os-release field -> `board` release key (OpenWrt writes the OPENWRT_ ones)
RELEASE_FIELDS = (("distribution", "NAME"), ("version", "VERSION_ID"),
                  ("revision", "BUILD_ID"), ("target", "OPENWRT_BOARD"),
                  ("description", "PRETTY_NAME"))


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _first_line(path):
    text = _read(path)
    return text.split("\n", 1)[0].strip() if text else None


def os_release(paths=OS_RELEASE):
    """KEY=value lines, shell quotes removed."""
    for path in paths:
        text = _read(path)
        if text is None:
            continue
        fields = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                fields[key.strip()] = value
        return fields
    return {}


def _cpu_name():
    """procd's `system`: the cpuinfo line naming the SoC or CPU."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("system type", "machine", "model name", "cpu model",
                                   "Processor", "Hardware"):
            return value.strip()
    return None


def _rootfs_type():
    for line in (_read("/proc/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "/" and fields[2] != "rootfs":
            return fields[2]
    return None


def board():
    uts = os.uname()
    reply = {"kernel": uts.release, "hostname": uts.nodename}
    for key, value in (("system", _cpu_name()),
                       ("model", _first_line("/tmp/sysinfo/model")
                        or (_first_line("/proc/device-tree/model") or "").rstrip("\0") or None),
                       ("board_name", _first_line("/tmp/sysinfo/board_name")),
                       ("rootfs_type", _rootfs_type())):
        if value:
            reply[key] = value
    fields = os_release()
    release = {key: fields[name] for key, name in RELEASE_FIELDS if name in fields}
    if release:
        reply["release"] = release
    return reply


def _meminfo():
    values = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        key, sep, rest = line.partition(":")
        if sep and rest.split():
            values[key] = int(rest.split()[0]) * 1024
    return values


def _fs(path):
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    kib = st.f_frsize // 1024 or 1
    return {"total": Int64(st.f_blocks * kib), "free": Int64(st.f_bfree * kib),
            "used": Int64((st.f_blocks - st.f_bfree) * kib), "avail": Int64(st.f_bavail * kib)}


def info(now=None):
    now = time.time() if now is None else now
    uptime = (_read("/proc/uptime") or "0").split()[0]
    loads = (_read("/proc/loadavg") or "0 0 0").split()[:3]
    mem = _meminfo()
    reply = {
        "localtime": int(now) + time.localtime(now).tm_gmtoff,
        "uptime": int(float(uptime)),
        "load": [int(float(x) * 65536) for x in loads],
        "memory": {name: Int64(mem.get(key, 0)) for name, key in (
            ("total", "MemTotal"), ("free", "MemFree"), ("shared", "Shmem"),
            ("buffered", "Buffers"), ("available", "MemAvailable"), ("cached", "Cached"))},
    }
    for name, path in (("root", "/"), ("tmp", "/tmp")):
        fs = _fs(path)
        if fs is not None:
            reply[name] = fs
    reply["swap"] = {"total": Int64(mem.get("SwapTotal", 0)), "free": Int64(mem.get("SwapFree", 0))}
    return reply


METHODS = (("board", board), ("info", info))


class SystemApi:
    """Publishes the read-only `system` methods through `client`."""

    def __init__(self, client, log=None):
        self.client = client
        self.log = log or (lambda message, priority=LOG_NOTICE: None)
        self.obj = UbusObject("system", {name: ({}, self._handler(fn)) for name, fn in METHODS})

    def _handler(self, fn):
        def call(invocation, _data):
            invocation.reply(fn())
            return 0
        return call

    def publish(self):
        self.client.add_object(self.obj, self._published)

    def _published(self, status):
        if status:  # procd (or another daemon) serves `system` on this bus
            self.log(f"ubus object 'system' not registered (status {status}): "
                     "another daemon serves it", LOG_NOTICE)
