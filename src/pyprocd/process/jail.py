"""The built-in jail: procd's `jail` instance keys honoured as ujail does (spec jail.md).

Parent side (before fork) `prepare(spec, sockets)` reads the instance's `jail`
table, checks every value, resolves the program's interpreter and libraries and
builds the mount table; anything it cannot honour is a JailError (the instance's
error), never a weaker jail. Child side, in the forked child before the identity
switch and hardening, `enter(plan)`:

    setns into the joined namespaces; unshare(pid); fork.  The jailed process
    unshares mnt, ipc [, uts, net, cgroup].  The forked process stays outside
    as the supervisor (it execs a fresh small interpreter, process/jailwatch.py,
    rather than keep a copy of the daemon): it forwards signals to the jailed process, SIGKILLs it `term_timeout` s after a SIGTERM
    (a pid-namespace init ignores signals it has no handler for) and exits with
    its status (128+N for signal N), so the instance pid is a real host pid.
    The jailed process (pid 1 inside) makes `/` private, mounts a tmpfs root in
    a temporary directory, applies the mount table in strcmp order of the
    target, masks, pivot_root()s into it, drops the old root, creates the
    devices, remounts `/` read-only for `ronly`, and returns: the spawner goes
    on with user/group, hardening and exec, inside.

`userns`: once the root is built, the jailed process unshares a user namespace
and the supervisor maps root inside to the instance's user and group (65534 by
default), as ujail does; the process is then root inside and keeps no identity
of the host's.

`extroot` (a directory bound as the root instead of the tmpfs; nothing of the
program's is added), `overlaydir` / `tmpoverlaysize` (an overlay over the root,
its upper layer in that directory or in a tmpfs of that size) as ujail.

Not supported (an instance error): `console`, OCI (`bundle`, `immediately`,
`pidfile`).
Deviations from ujail, all stricter: a `mount` whose source is missing or a
`setns` token/pid that is unknown is an error (ujail skips them); user/group
switch as without a jail (gid = the user's primary group, where ujail leaves 0).
"""

import errno
import os

from pyprocd.process import shim

JAIL_BOOLS = ("procfs", "sysfs", "ubus", "udebug", "log", "ronly", "netns", "userns",
              "cgroupsns", "console", "requirejail", "immediately")
JAIL_STRINGS = ("name", "hostname", "pidfile")
UNSUPPORTED_FLAGS = ("console", "immediately")
UNSUPPORTED_KEYS = ("bundle",)
SETNS_TYPES = {"pid": shim.CLONE_NEWPID, "net": shim.CLONE_NEWNET, "ipc": shim.CLONE_NEWIPC,
               "uts": shim.CLONE_NEWUTS, "cgroup": shim.CLONE_NEWCGROUP,
               "time": shim.CLONE_NEWTIME}
DEFAULT_SOCKETS = {"ubus": "/var/run/ubus/ubus.sock", "udebug": "/var/run/udebug.sock",
                   "log": "/dev/log"}

RO = shim.MS_RDONLY
NOSUID, NODEV, NOEXEC, NOATIME = shim.MS_NOSUID, shim.MS_NODEV, shim.MS_NOEXEC, shim.MS_NOATIME
PROC_MASKS = (("/proc/kcore", True), ("/proc/sysrq-trigger", True),
              ("/proc/latency_stats", False), ("/proc/timer_list", False),
              ("/proc/timer_stats", False), ("/proc/sched_debug", False),
              ("/proc/scsi", False))
# (name, major, minor, group); all 0666
DEVICES = (("null", 1, 3, 0), ("zero", 1, 5, 0), ("full", 1, 7, 0), ("random", 1, 8, 0),
           ("urandom", 1, 9, 0), ("tty", 5, 0, 5))
DEV_LINKS = (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))


MASK = "mask"  # the fs type of a mount-table entry hiding a path (spec jail.md §4.2)


class JailError(ValueError):
    """The jail cannot be built as asked; str() is the instance's error."""


class Mount:
    """One entry of the jail's mount table (target inside the jail)."""

    __slots__ = ("data", "fatal", "flags", "fstype", "remount", "source", "target")

    def __init__(self, target, source, fstype=None, flags=0, data=None, remount=0, fatal=True):
        self.target = os.fsencode(target)
        self.source = None if source is None else os.fsencode(source)
        self.fstype = fstype
        self.flags = flags
        self.data = data
        self.remount = remount  # flags of a bind's MS_REMOUNT|MS_BIND second step
        self.fatal = fatal

    def __repr__(self):
        return f"Mount({self.target!r}, {self.source!r}, {self.fstype!r})"


def is_jailed(spec):
    """procd: any `jail` table (even empty) jails the instance; `trace` turns it off."""
    return spec.jail is not None and not spec.trace


def _check_types(jail):
    for key, value in jail.items():
        if key in JAIL_BOOLS:
            if type(value) is not bool:
                raise JailError(f"jail: '{key}' must be a boolean")
        elif key in JAIL_STRINGS:
            if type(value) is not str:
                raise JailError(f"jail: '{key}' must be a string")
        elif key == "mount":
            if type(value) is not dict or not all(type(v) is str for v in value.values()):
                raise JailError("jail: 'mount' must be a table of path: \"0\"|\"1\"")
        elif key == "setns":
            if type(value) is not list:
                raise JailError("jail: 'setns' must be an array")
        else:
            raise JailError(f"jail: unknown key '{key}'")


def _setns_plan(entries):
    """[(pid, [(token, flag)])]; every pid must be alive and every token known."""
    plan = []
    for entry in entries:
        if (type(entry) is not dict or type(entry.get("pid")) is not int
                or type(entry.get("namespaces")) is not list):
            raise JailError("jail: each 'setns' entry must be {pid: int, namespaces: [string]}")
        pid = entry["pid"]
        tokens = []
        for token in entry["namespaces"]:
            if token not in SETNS_TYPES:
                raise JailError(f"jail: setns: unknown namespace {token!r}")
            if not os.path.exists(f"/proc/{pid}/ns/{token}") or pid <= 0:
                raise JailError(f"jail: setns: no process {pid} to join ({token})")
            tokens.append((token, SETNS_TYPES[token]))
        plan.append((pid, tokens))
    return plan


class JailPlan:
    """What the child does to enter the jail; built by prepare()."""

    def __init__(self):
        self.name = None
        self.hostname = None
        self.flags = 0          # unshare() flags
        self.mount_ns = False
        self.mounts = []        # Mount, in application order
        self.ronly = False
        self.setns = []         # (pid, [(token, flag)])
        self.term_timeout = 5
        self.env = {}
        self.userns = None      # (uid, gid) root inside is mapped to, with `userns`
        self.extroot = None     # bytes: the directory bound as the root
        self.overlay = None     # ("dir", bytes path) or ("tmpfs", size): over the root

    # -- building (parent) ------------------------------------------------------------

    def add(self, mount):
        """First writer wins for a target, as in ujail."""
        if all(m.target != mount.target for m in self.mounts):
            self.mounts.append(mount)

    def add_bind(self, path, writable=False, fatal=True, target=None, scan=True):
        """Bind `path` (and, for programs, what it needs) at the same path inside."""
        from pyprocd.process.elfdeps import DepsError, dependencies

        if not os.path.isabs(path):
            raise JailError(f"jail: mount path {path!r} is not absolute")
        if not os.path.exists(path):
            if fatal:
                raise JailError(f"jail: mount source {path} does not exist")
            return
        self.add(Mount(target or path, os.path.realpath(path), flags=shim.MS_BIND,
                       remount=0 if writable else RO, fatal=fatal))
        if scan and target is None and os.path.isfile(path):
            try:
                for dep in dependencies(path)[1:]:
                    self.add(Mount(dep, os.path.realpath(dep), flags=shim.MS_BIND, remount=RO))
            except DepsError as e:
                raise JailError(f"jail: {e}") from None


def prepare(spec, sockets=None):
    """The JailPlan for a jailed instance (see is_jailed); raises JailError."""
    jail = spec.jail
    if type(jail) is not dict:
        raise JailError("jail: must be a table")
    _check_types(jail)
    raw = getattr(spec, "raw", {}) or {}
    for key in UNSUPPORTED_KEYS:
        if raw.get(key) is not None:
            raise JailError(f"jail: '{key}' is not supported by pyprocd's built-in jail")
    for key in UNSUPPORTED_FLAGS:
        if jail.get(key) is True:
            raise JailError(f"jail: '{key}' is not supported by pyprocd's built-in jail")
    if jail.get("pidfile") is not None:
        raise JailError("jail: 'pidfile' (OCI) is not supported by pyprocd's built-in jail")
    if os.geteuid() != 0:
        raise JailError("jail: needs root (the daemon is not running as root)")
    program = spec.command[0] if spec.command else ""
    if not program.startswith("/"):
        raise JailError(f"jail: {program!r} is not an absolute path")
    sockets = dict(DEFAULT_SOCKETS, **(sockets or {}))
    plan = JailPlan()
    plan.name = jail.get("name")
    plan.hostname = jail.get("hostname") or None
    plan.term_timeout = spec.term_timeout
    plan.ronly = jail.get("ronly") is True
    plan.setns = _setns_plan(jail.get("setns", []))
    joined = 0
    for _pid, tokens in plan.setns:
        for _token, flag in tokens:
            joined |= flag
    _root_options(plan, raw)
    _decide_namespaces(plan, jail, joined)
    if jail.get("userns") is True:
        plan.userns = _userns_ids(spec)
    if plan.mount_ns:
        _mount_table(plan, spec, jail, sockets)
    plan.env = _environment(spec)
    return plan


def _root_options(plan, raw):
    """extroot, overlaydir, tmpoverlaysize (instance keys beside `jail`)."""
    extroot, overlaydir, size = (raw.get(k) for k in ("extroot", "overlaydir", "tmpoverlaysize"))
    for key, value in (("extroot", extroot), ("overlaydir", overlaydir),
                       ("tmpoverlaysize", size)):
        if value is not None and (type(value) is not str or not value):
            raise JailError(f"jail: '{key}' must be a non-empty string")
    for key, value in (("extroot", extroot), ("overlaydir", overlaydir)):
        if value is not None and not os.path.isdir(value):
            raise JailError(f"jail: {key} {value} is not a directory")
    if size is not None and len(size) > 8:
        raise JailError(f"jail: tmpoverlaysize {size!r} is longer than 8 characters")
    plan.extroot = os.fsencode(os.path.realpath(extroot)) if extroot else None
    if overlaydir:
        plan.overlay = ("dir", os.fsencode(os.path.realpath(overlaydir)))
    elif size:
        plan.overlay = ("tmpfs", size)


def _userns_ids(spec):
    """(uid, gid) of the host that root inside a `userns` jail is (spec jail.md §9)."""
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            available = int(f.read()) > 0
    except (OSError, ValueError):
        available = False
    if not available or not os.path.exists("/proc/self/ns/user"):
        raise JailError("jail: 'userns' asked but this kernel has no user namespaces")
    uid = spec.uid if spec.user else 65534
    gid = spec.gid if (spec.user or spec.group) else 65534
    return uid, gid


def _decide_namespaces(plan, jail, joined):
    flags = 0
    if plan.hostname:
        flags |= shim.CLONE_NEWUTS
    if jail.get("netns") is True:
        if not plan.name:
            raise JailError("jail: 'netns' needs a jail 'name'")
        flags |= shim.CLONE_NEWNET
    if jail.get("cgroupsns") is True:
        flags |= shim.CLONE_NEWCGROUP
    mount_keys = ("procfs", "sysfs", "ubus", "udebug", "log", "ronly", "userns")
    plan.mount_ns = (any(jail.get(k) is True for k in mount_keys) or bool(jail.get("mount"))
                     or bool(plan.extroot or plan.overlay))
    if plan.mount_ns:
        flags |= shim.CLONE_NEWNS
    if flags:
        flags |= shim.CLONE_NEWIPC | shim.CLONE_NEWPID
    # a namespace created by a flag wins over a join of the same kind (ujail: the
    # earlier option); a joined one is not created anew
    plan.setns = [(pid, [(t, f) for t, f in tokens if not f & flags]) for pid, tokens in plan.setns]
    plan.flags = flags & ~joined
    if not plan.flags and not plan.setns:
        raise JailError("jail: no namespace asked for (ujail: \"Not using namespaces, "
                        "capabilities or seccomp\"); give a jail flag or drop the jail")


def _mount_table(plan, spec, jail, sockets):
    # in ujail's order of adding: -r/-w, sockets, the program, defaults
    for path in sorted(jail.get("mount", {}), key=os.fsencode):
        plan.add_bind(path, writable=jail["mount"][path] == "1", scan=plan.extroot is None)
    for key, fatal in (("ubus", True), ("udebug", False), ("log", True)):
        if jail.get(key) is True:
            source = sockets[key]
            if not os.path.exists(source) and fatal:
                raise JailError(f"jail: '{key}' socket {source} does not exist")
            plan.add_bind(source, writable=True, fatal=fatal,
                          target=DEFAULT_SOCKETS[key], scan=False)
    if plan.extroot is None:  # an external root brings its own programs and files
        plan.add_bind(spec.command[0])
        if spec.user or spec.group:
            for path in ("/etc/passwd", "/etc/group"):
                plan.add_bind(path, scan=False)
        plan.add_bind("/etc/nsswitch.conf", fatal=False, scan=False)
    if not jail.get("netns"):
        plan.add_bind("/etc/resolv.conf", fatal=False, scan=False)
    plan.add(Mount("/dev", "tmpfs", "tmpfs", NOATIME | NOEXEC | NOSUID, "size=1M"))
    plan.add(Mount("/dev/shm", "shm", "tmpfs", NOSUID | NOEXEC | NODEV, "mode=1777"))
    plan.add(Mount("/dev/pts", "devpts", "devpts", NOATIME | NOEXEC | NOSUID,
                   "newinstance,ptmxmode=0666,mode=0620,gid=5", fatal=False))
    if jail.get("procfs") is True:
        plan.add(Mount("/proc", "proc", "proc", NODEV | NOEXEC | NOSUID))
        plan.add(Mount("/proc/sys", None, flags=shim.MS_BIND, remount=RO))  # itself, ro
        for path, fatal in PROC_MASKS:
            plan.add(Mount(path, None, MASK, fatal=fatal))
    if jail.get("sysfs") is True:
        plan.add(Mount("/sys", "sysfs", "sysfs", RO | NODEV | NOEXEC | NOSUID))
        plan.add(Mount("/sys/firmware", None, MASK))
    plan.mounts.sort(key=lambda m: m.target)


def _environment(spec):
    """ujail's envp: container=ujail, then the instance's env (nothing of the daemon's)."""
    env = {b"container": b"ujail"}
    for key, value in spec.env:
        env[key.encode()] = value.encode()
    return env


# -- the child ---------------------------------------------------------------------------


def enter(plan):
    """In the forked child: returns in the jailed process; the supervisor never returns.

    The supervisor keeps no fd of the daemon's or the instance's: the program alone
    holds the instance's pipes, and nothing of the daemon outlives it there.
    """
    import _signal as signal

    for pid, tokens in plan.setns:
        for token, flag in tokens:
            fd = os.open(f"/proc/{pid}/ns/{token}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                shim.setns(fd, flag)
            finally:
                os.close(fd)
    # Only the pid namespace is the supervisor's (it applies to its children); the
    # others are the jailed process's alone, so the supervisor stays on the host's
    # filesystem (it execs an interpreter from there).
    if plan.flags & shim.CLONE_NEWPID:
        shim.unshare(shim.CLONE_NEWPID)
    host_pid = os.getpid()
    if plan.name:
        shim.set_name(plan.name)  # the supervisor's comm (the program's changes at exec)
    handshake = (os.pipe(), os.pipe()) if plan.userns else None
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if handshake else None
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    child = os.fork()
    if child:
        if handshake:
            os.close(handshake[0][1])  # or a child that died would never be noticed
            os.close(handshake[1][0])
            _map_user(plan, child, proc, handshake[0][0], handshake[1][1])
        _supervise(plan, child, devnull)  # never returns; signals stay blocked
    os.close(devnull)
    if handshake:
        os.close(proc)  # never a host /proc inside the jail
        os.close(handshake[0][0])
        os.close(handshake[1][1])  # a supervisor that gives up: EOF here, not a hang
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    shim.set_pdeathsig(signal.SIGKILL)
    if plan.flags & ~shim.CLONE_NEWPID:
        shim.unshare(plan.flags & ~shim.CLONE_NEWPID)
    if plan.hostname:
        shim.sethostname(plan.hostname)
    if plan.mount_ns:
        _build_root(plan, f"/tmp/pyprocd-jail-{host_pid}")
    if handshake:
        _enter_userns(handshake[0][1], handshake[1][0])


def _enter_userns(ready_w, go_r):
    """The jailed process, its root built: a user namespace of its own, mapped by the
    supervisor; then root inside (and no host identity left)."""
    shim.unshare(shim.CLONE_NEWUSER)
    os.write(ready_w, b"i")
    os.close(ready_w)
    if os.read(go_r, 1) != b"O":
        raise OSError(1, "userns: the supervisor could not map the user namespace")
    os.close(go_r)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.setgroups([])


def _map_user(plan, child, proc, ready_r, go_w):
    """Supervisor: once the child is in its user namespace, map root inside to the
    instance's ids. Any failure leaves the child without its go-ahead: it stops."""
    try:
        if os.read(ready_r, 1) == b"i":
            uid, gid = plan.userns
            for name, text in (("setgroups", "allow"), ("uid_map", f"0 {uid} 1\n"),
                               ("gid_map", f"0 {gid} 1\n")):
                fd = os.open(f"{child}/{name}", os.O_WRONLY | os.O_CLOEXEC, dir_fd=proc)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
            os.write(go_w, b"O")
    except OSError:
        pass


WATCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jailwatch.py")


def _supervise(plan, child, devnull):
    """ujail's parent: forward signals, escalate SIGTERM to SIGKILL, exit as the child.

    Runs with every signal blocked, and execs process/jailwatch.py in a fresh
    interpreter (which unblocks them once its handlers are in place); where that
    cannot start, this copy of the daemon does the same itself."""
    import gc
    import sys

    from pyprocd.process import jailwatch

    gc.disable()  # a collection would touch (and so copy) every page shared with the daemon
    status = 1
    try:
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 1 << 20)  # the daemon's sockets and pipes, the instance's pipes
        python = sys.executable
        if python:
            try:
                os.execv(python, [python, "-I", "-S", WATCHER, str(child),
                                  str(plan.term_timeout), plan.name or ""])
            except OSError:
                pass  # supervise from here
        status = jailwatch.watch(child, plan.term_timeout)
    except BaseException:  # noqa: BLE001 - never return into the daemon's code
        try:
            os.kill(child, 9)
        except BaseException:  # noqa: BLE001, S110 - already dead: nothing left to end
            pass
    os._exit(status)


def _mkdirs(path):
    os.makedirs(path, mode=0o755, exist_ok=True)


def _make_target(root, mount):
    target = root + mount.target
    if mount.source is not None and mount.flags & shim.MS_BIND and not os.path.isdir(mount.source):
        _mkdirs(os.path.dirname(target))
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    else:
        _mkdirs(target)
    return target


def _apply(root, mount):
    try:
        source = mount.source
        if mount.flags & shim.MS_BIND:
            source = root + mount.target if source is None else source  # None: itself
            if not os.path.exists(source):
                raise OSError(2, f"{os.fsdecode(source)} does not exist")
        target = _make_target(root, mount)
        shim.mount(source, target, mount.fstype, mount.flags, mount.data)
        if mount.remount:
            shim.mount(None, target, None,
                       shim.MS_REMOUNT | shim.MS_BIND | mount.remount | _kept_flags(target), None)
    except OSError as e:
        if mount.fatal:
            raise OSError(e.errno, f"mount {os.fsdecode(mount.target)}: {e.strerror}") from None


def _kept_flags(target):
    """The lock-protected flags (nosuid, nodev, noexec) the source mount already has:
    a bind remount that dropped them would be refused (EPERM) in a new namespace."""
    st = os.statvfs(target)
    flags = 0
    for bit, value in ((os.ST_NOSUID, NOSUID), (os.ST_NODEV, NODEV), (os.ST_NOEXEC, NOEXEC)):
        if st.f_flag & bit:
            flags |= value
    return flags


def _mask(root, path, fatal):
    """An empty read-only tmpfs on a directory, a mode-0000 empty file on a file."""
    target = root + path
    if not os.path.lexists(target):
        return
    noafile = root + b"/dev/.ujailnoafile"  # /dev (a tmpfs) sorts before /proc and /sys
    try:
        if not os.path.exists(noafile):
            os.close(os.open(noafile, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0))
        if os.path.isdir(target):
            shim.mount("tmpfs", target, "tmpfs", RO | NOSUID | NOEXEC | NODEV | shim.MS_RELATIME,
                       "size=0,mode=000")
        else:
            shim.mount(noafile, target, None, shim.MS_BIND)
            shim.mount(None, target, None, shim.MS_REMOUNT | shim.MS_BIND | RO | NOSUID
                       | NOEXEC | NODEV | shim.MS_RELATIME)
    except OSError as e:
        if fatal:
            raise OSError(e.errno, f"mask {os.fsdecode(path)}: {e.strerror}") from None


def _overlay(plan, root, root_dir):
    """An overlay over the root (ujail's -O/-T): upper and work in the overlay
    directory, or in a tmpfs of the asked size (its host directory returned)."""
    kind, value = plan.overlay
    tmp = None
    if kind == "tmpfs":
        tmp = os.fsencode(root_dir + "-overlay")
        os.mkdir(tmp, 0o700)
        shim.mount("tmpfs", tmp, "tmpfs", 0, f"mode=0755,size={value}")
        value = tmp
    for sub in (b"/upper", b"/work", b"/upper/etc"):
        _mkdirs(value + sub)
    resolv = value + b"/upper/etc/resolv.conf"
    if not os.path.exists(resolv):
        os.close(os.open(resolv, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    options = b"lowerdir=" + root + b",upperdir=" + value + b"/upper,workdir=" + value + b"/work"
    shim.mount("overlay", root, "overlay", NOATIME, options)
    return tmp


def _pivot(root):
    """pivot_root into root. On an initramfs (rootfs) root the kernel refuses it; the
    only way round, move + chroot, leaves the host's root reachable, so the jail is
    refused with that reason instead of being made weaker."""
    try:
        shim.pivot_root(root, root + b"/old")
    except OSError as e:
        if e.errno == errno.EINVAL and _root_is_rootfs():
            raise OSError(errno.EINVAL, "pivot_root is impossible on an initramfs (rootfs) "
                          "root; a jail needs the system on a real root file system") from None
        raise


def _root_is_rootfs():
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == "/":
                    return fields[fields.index("-") + 1] == "rootfs"
    except (OSError, ValueError, IndexError):
        pass
    return False


def _build_root(plan, root_dir):
    old_umask = os.umask(0)
    shim.mount(None, "/", None, shim.MS_REC | shim.MS_PRIVATE)
    root = os.fsencode(root_dir)
    os.mkdir(root, 0o700)
    overlay_tmp = None
    try:
        if plan.extroot:
            shim.mount(plan.extroot, root, None, shim.MS_BIND)
        else:
            shim.mount("tmpfs", root, "tmpfs", NOATIME, "mode=0755")
        if plan.overlay:
            overlay_tmp = _overlay(plan, root, root_dir)
        for mount in plan.mounts:
            if mount.fstype == MASK:
                _mask(root, mount.target, mount.fatal)
            else:
                _apply(root, mount)
        os.mkdir(root + b"/old", 0o755)
        _pivot(root)
    except BaseException:
        for path in (root, overlay_tmp):
            try:
                if path:
                    shim.umount2(path, shim.MNT_DETACH)
                    os.rmdir(path)
            except OSError:
                pass
        raise
    os.chdir("/")
    if plan.overlay:  # the root's lower layer is still mounted on the directory
        shim.umount2(b"/old" + root, shim.MNT_DETACH)
    os.rmdir(b"/old" + root)  # the host's temporary directory: gone once we are inside
    if overlay_tmp:
        shim.umount2(b"/old" + overlay_tmp, shim.MNT_DETACH)
        os.rmdir(b"/old" + overlay_tmp)
    shim.umount2("/old", shim.MNT_DETACH)
    os.rmdir("/old")
    for name, major, minor, group in DEVICES:
        try:
            os.mknod(f"/dev/{name}", 0o20666, os.makedev(major, minor))
            if group:
                os.chown(f"/dev/{name}", 0, group)
        except OSError:
            pass  # ujail ignores these errors too
    for name, target in DEV_LINKS:
        try:
            os.symlink(target, f"/dev/{name}")
        except OSError:
            pass
    if plan.ronly:
        shim.mount(None, "/", None, shim.MS_REMOUNT | shim.MS_BIND | RO | NOATIME)
    os.umask(old_umask)


# -- OpenWrt's ujail instead (setting `jail 'ujail'` of /etc/config/pyprocd) ------------------

UJAIL = "/sbin/ujail"
# jail table flag -> ujail option, in the order procd writes them (spec jail.md §12)
UJAIL_FLAGS = (("procfs", "-p"), ("sysfs", "-s"), ("ubus", "-u"), ("udebug", "-D"),
               ("log", "-l"), ("ronly", "-o"), ("netns", "-N"), ("userns", "-f"),
               ("cgroupsns", "-F"), ("console", "-y"))


def ujail_argv(spec):
    """The argv procd builds for a jailed instance: /sbin/ujail, its options, `--`,
    the command. Values of the wrong type count as absent (procd's blobmsg policy)."""
    jail = spec.jail if type(spec.jail) is dict else {}
    raw = getattr(spec, "raw", {}) or {}

    def text(table, key):
        value = table.get(key)
        return value if type(value) is str and value else None

    argv = [UJAIL, "-t", str(spec.term_timeout)]
    for option, value in (("-n", text(jail, "name")), ("-h", text(jail, "hostname")),
                          ("-S", spec.seccomp), ("-U", spec.user), ("-G", spec.group),
                          ("-C", spec.capabilities)):
        if value:
            argv += [option, value]
    if spec.no_new_privs:
        argv.append("-c")
    argv += [option for key, option in UJAIL_FLAGS if jail.get(key) is True]
    for option, value in (("-R", text(raw, "extroot")), ("-O", text(raw, "overlaydir")),
                          ("-T", text(raw, "tmpoverlaysize"))):
        if value:
            argv += [option, value]
    if jail.get("immediately") is True:
        argv.append("-i")
    for option, value in (("-P", text(jail, "pidfile")), ("-J", text(raw, "bundle"))):
        if value:
            argv += [option, value]
    if jail.get("requirejail") is True:
        argv.append("-E")
    for name in sorted({key for key, _value in spec.env}, key=os.fsencode):
        argv += ["-e", name]
    mounts = jail.get("mount") if type(jail.get("mount")) is dict else {}
    for path in sorted(mounts, key=os.fsencode):
        argv += ["-w" if mounts[path] == "1" else "-r", path]
    for entry in jail.get("setns") if type(jail.get("setns")) is list else ():
        if type(entry) is dict and type(entry.get("pid")) is int:
            names = [n for n in entry.get("namespaces") or () if type(n) is str]
            argv += ["-j", f"{entry['pid']}:" + ",".join(names)]
    return argv + ["--"] + list(spec.command)
