"""Child hardening for every instance, jailed or not: no_new_privs, capabilities, seccomp.

procd applies these only inside ujail; pyprocd applies them to every instance, in the
forked child, right before exec. Parent side (before fork) everything is read, checked
and compiled, so a policy that cannot be honoured stops the instance with a reason
instead of starting it with a weaker sandbox.

Interface for the spawner
-------------------------
    plan = harden.prepare(no_new_privs, capabilities_path, seccomp_path)   # parent
        -> HardenPlan, or None when the instance asks for nothing
        raises HardenError(ValueError): the message is the instance's error

    In the forked child, ALWAYS in this order (each raises OSError -> exit 127):
      1. plan.before_setuid()    still root: drop the bounding set, PR_SET_KEEPCAPS=1
      2. (spawner) setgroups/initgroups, setgid, setuid   -- or nothing if no user
      3. plan.after_setuid()     capset(effective, permitted, inheritable), ambient raise
      4. (spawner) the rest of the child setup (fds, env, rlimits, nice; these may
         equally come before step 1)
      5. plan.apply_in_child()   PR_SET_NO_NEW_PRIVS, then load the seccomp filter
      6. (spawner) execve, immediately: after step 5 only execve may follow, since the
         filter already applies to every syscall the child makes.
    All three methods are cheap no-ops for the parts a plan does not have; they
    allocate nothing (the BPF program and cffi are prepared by prepare()). If step 1
    is skipped (no identity switch), step 3 drops the bounding set itself, and fails
    with EPERM when the child lacks CAP_SETPCAP: never a silently kept bounding set.

Daemon side:
    harden.set_child_subreaper()   make pyprocd the reaper of orphaned descendants
    harden.follow_pidfile(...)     find a daemonising service's new main pid
"""

import errno
import os
import time

from pyprocd.process import caps as capsmod
from pyprocd.process import seccomp as seccompmod
from pyprocd.process.files import read_pidfile
from pyprocd.process.procfs import proc_stat, proc_uid


class HardenError(ValueError):
    """A hardening key cannot be honoured; str(error) is a user-facing reason."""


class HardenPlan:
    """What one instance's child must do; built by prepare().

    Every call the child makes is prepared here, in the parent (libc functions
    resolved, arguments cast, structs filled), so that the child between fork and
    exec only calls: no allocation, no copy-on-write storm, no dlsym.
    """

    __slots__ = (
        "_ambient",
        "_ambient_clear",
        "_bounded",
        "_capset",
        "_drops",
        "_final",
        "_keepcaps",
        "arch",
        "caps",
        "no_new_privs",
        "program",
    )

    def __init__(self, no_new_privs, caps, program, arch, shim, last_cap):
        self.no_new_privs = bool(no_new_privs or program is not None)  # seccomp needs it
        self.caps = caps
        self.program = program
        self.arch = arch
        self._bounded = False   # set in the child once the bounding set is dropped
        self._drops = self._keepcaps = self._capset = self._ambient = ()
        self._ambient_clear = None
        if caps is not None:
            self._prepare_caps(shim, caps, last_cap)
        final = []
        if self.no_new_privs:
            final.append(shim.PrctlCall(shim.PR_SET_NO_NEW_PRIVS, 1))
        if program is not None:
            final.append(shim.seccomp_call(program))
        self._final = tuple(final)

    def _prepare_caps(self, shim, caps, last_cap):
        # The child inherits this process's bounding set: what to drop is known now.
        self._drops = tuple(shim.PrctlCall(shim.PR_CAPBSET_DROP, n) for n in range(last_cap + 1)
                            if not caps.bounding >> n & 1 and shim.capbset_read(n))
        self._keepcaps = (shim.PrctlCall(shim.PR_SET_KEEPCAPS, 1),)
        self._capset = (shim.CapsetCall(caps.effective, caps.permitted, caps.inheritable),
                        shim.PrctlCall(shim.PR_SET_KEEPCAPS, 0))
        self._ambient_clear = shim.PrctlCall(shim.PR_CAP_AMBIENT, shim.PR_CAP_AMBIENT_CLEAR_ALL)
        self._ambient = tuple(shim.PrctlCall(shim.PR_CAP_AMBIENT, shim.PR_CAP_AMBIENT_RAISE, n)
                              for n in range(last_cap + 1) if caps.ambient >> n & 1)

    def before_setuid(self):
        """Child, still privileged, before the uid/gid switch."""
        self._drop_bounding()
        for call in self._keepcaps:   # keep permitted across setuid(non-root)
            call()

    def after_setuid(self):
        """Child, right after the uid/gid switch (or where it would be)."""
        if self.caps is None:
            return
        # If before_setuid() was skipped (no identity switch) the drop happens here;
        # without CAP_SETPCAP it then fails (EPERM) rather than leaving the set as is.
        self._drop_bounding()
        for call in self._capset:
            call()
        try:
            self._ambient_clear()
        except OSError as e:
            # Kernels before 4.3 have no ambient set (EINVAL): nothing to clear then.
            if e.errno != errno.EINVAL or self._ambient:
                raise
        for call in self._ambient:
            call()

    def apply_in_child(self):
        """Child, last step before execve: no_new_privs, then the seccomp filter."""
        for call in self._final:
            call()

    def _drop_bounding(self):
        if not self._bounded:
            for call in self._drops:
                call()
            self._bounded = True

    def summary(self):
        """Short description for logs and `list` output."""
        parts = []
        if self.no_new_privs:
            parts.append("no_new_privs")
        if self.caps is not None:
            parts.append("caps bounding=" + ",".join(capsmod.mask_to_names(self.caps.bounding)))
        if self.program is not None:
            parts.append(f"seccomp {self.arch} {len(self.program)} insns")
        return "; ".join(parts)


def prepare(no_new_privs, capabilities_path, seccomp_path, *, arch=None):
    """Parent side: read, check and compile. Returns None when nothing is requested."""
    if not no_new_privs and not capabilities_path and not seccomp_path:
        return None
    caps = _load_caps(capabilities_path) if capabilities_path else None
    instructions, arch = _compile_seccomp(seccomp_path, arch) if seccomp_path else (None, arch)
    shim = _load_shim()
    program = _build_program(shim, instructions) if instructions else None
    try:
        return HardenPlan(no_new_privs, caps, program, arch, shim, capsmod.kernel_last_cap())
    except OSError as e:
        raise HardenError(f"capabilities: cannot read the bounding set: {e.strerror}") from None


def _load_caps(path):
    try:
        return capsmod.load(path)
    except capsmod.CapsError as e:
        raise HardenError(str(e)) from None


def _compile_seccomp(path, arch):
    try:
        arch = arch or seccompmod.syscalls.host_arch()
        return seccompmod.compile_policy(seccompmod.load(path), arch), arch
    except ValueError as e:   # PolicyError, or no table for this host
        raise HardenError(str(e) if str(e).startswith("seccomp") else f"seccomp: {e}") from None


def _load_shim():
    try:
        from pyprocd.process import shim

        shim.ffi_and_lib()
        return shim
    except (ImportError, OSError) as e:
        raise HardenError(f"hardening needs cffi, which is not usable here: {e}") from None


def _build_program(shim, instructions):
    try:
        return shim.FilterProgram(instructions)
    except ValueError as e:
        raise HardenError(f"seccomp: {e}") from None


# --- daemon side -----------------------------------------------------------------------

def set_child_subreaper():
    """Make this process the reaper of its orphaned descendants (a service that double-
    forks stays our child, so the loop reaps it and reports it via on_orphan_reaped).
    Loads the cffi shim (about 0.35 MB RSS). Raises OSError."""
    from pyprocd.process import shim

    shim.set_child_subreaper(True)


class Lineage:
    """What a process descending from an instance's main process must match: started
    no earlier than it, re-parented to `parent` (us, as subreaper), and -- when the
    instance runs as a non-root user -- still that user (a `nobody` service cannot
    name a root process as its successor). `owned_elsewhere(pid)` says a pid is
    another instance's process, which is never taken over."""

    __slots__ = ("owned_elsewhere", "parent", "start_ticks", "uid")

    def __init__(self, parent=None, start_ticks=None, uid=None, owned_elsewhere=None):
        self.parent = parent
        self.start_ticks = start_ticks
        self.uid = uid or None
        self.owned_elsewhere = owned_elsewhere

    def admits(self, pid):
        stat = proc_stat(pid)
        if stat is None or stat[0] == "Z":      # gone, or a zombie
            return False
        _state, ppid, start_ticks = stat
        if self.parent is not None and ppid != self.parent:
            return False
        if self.start_ticks is not None and start_ticks < self.start_ticks:
            return False
        if self.uid is not None and proc_uid(pid) != self.uid:
            return False
        return not (self.owned_elsewhere is not None and self.owned_elsewhere(pid))


def pidfile_candidate(path, exited_pid, parent=None, lineage=None):
    """The service's new main pid if the pidfile names one now, else None: a live
    process other than the exited one that `lineage` admits (a bare `parent`: whose
    parent is `parent` -- pass os.getpid() when subreaper, so a stale pidfile naming
    an unrelated process is never adopted and later killed)."""
    pid = read_pidfile(path)
    if pid is None or pid == exited_pid:
        return None
    if lineage is None:
        lineage = Lineage(parent)
    return pid if lineage.admits(pid) else None


def follow_pidfile(path, exited_pid, *, timeout=5.0, poll=0.05, parent=None, lineage=None,
                   sleep=time.sleep, clock=time.monotonic):
    """Blocking, bounded: wait up to `timeout` s for the pidfile to name the new pid.
    For tools and tests; the daemon uses follow_pidfile_async."""
    deadline = clock() + timeout
    while True:
        pid = pidfile_candidate(path, exited_pid, parent, lineage)
        if pid is not None or clock() >= deadline:
            return pid
        sleep(min(poll, max(0.0, deadline - clock())))


def follow_pidfile_async(loop, path, exited_pid, callback, *, timeout=5.0, poll=0.05,
                         parent=None, lineage=None):
    """Non-blocking: polls with loop.call_later and calls callback(pid_or_None) once.
    Returns a cancel() function."""
    deadline = loop.time() + timeout
    state = {"timer": None, "done": False}

    def check():
        if state["done"]:
            return
        pid = pidfile_candidate(path, exited_pid, parent, lineage)
        if pid is not None or loop.time() >= deadline:
            state["done"] = True
            callback(pid)
            return
        state["timer"] = loop.call_later(min(poll, max(0.0, deadline - loop.time())), check)

    def cancel():
        state["done"] = True
        if state["timer"] is not None:
            state["timer"].cancel()

    check()
    return cancel


def pidfd_open(pid):
    """A pidfd for pid (readable when it exits; works for non-children), or None when
    the kernel or Python lacks pidfd_open or the process is gone."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None
