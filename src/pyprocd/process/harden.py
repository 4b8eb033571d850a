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
      4. (spawner) everything else: fds, cwd, env, rlimits, nice...
      5. plan.apply_in_child()   PR_SET_NO_NEW_PRIVS, then load the seccomp filter
      6. (spawner) execve, immediately: after step 5 only execve may follow, since the
         filter already applies to every syscall the child makes.
    All three methods are cheap no-ops for the parts a plan does not have; they
    allocate nothing (the BPF program and cffi are prepared by prepare()).

Daemon side:
    harden.set_child_subreaper()   make pyprocd the reaper of orphaned descendants
    harden.follow_pidfile(...)     find a daemonising service's new main pid
"""

import errno
import os
import time

from pyprocd.process import caps as capsmod
from pyprocd.process import seccomp as seccompmod


class HardenError(ValueError):
    """A hardening key cannot be honoured; str(error) is a user-facing reason."""


class HardenPlan:
    """What one instance's child must do; built by prepare()."""

    __slots__ = ("no_new_privs", "caps", "program", "arch", "last_cap", "_shim", "_bounded")

    def __init__(self, no_new_privs, caps, program, arch, last_cap, shim):
        self.no_new_privs = bool(no_new_privs or program is not None)  # seccomp needs it
        self.caps = caps
        self.program = program
        self.arch = arch
        self.last_cap = last_cap
        self._shim = shim
        self._bounded = False   # set in the child once the bounding set is dropped

    def before_setuid(self):
        """Child, still privileged, before the uid/gid switch."""
        if self.caps is not None:
            _drop_bounding(self._shim, self.caps, self.last_cap)
            self._bounded = True
            self._shim.set_keepcaps(True)   # keep permitted across setuid(non-root)

    def after_setuid(self):
        """Child, right after the uid/gid switch (or where it would be)."""
        if self.caps is not None:
            if not self._bounded:
                # before_setuid() was skipped (no identity switch): drop it now; without
                # CAP_SETPCAP this fails (EPERM) rather than leaving the set untouched.
                _drop_bounding(self._shim, self.caps, self.last_cap)
                self._bounded = True
            _set_process_sets(self._shim, self.caps, self.last_cap)

    def apply_in_child(self):
        """Child, last step before execve."""
        if self.no_new_privs:
            self._shim.set_no_new_privs()
        if self.program is not None:
            self._shim.load_seccomp_filter(self.program)

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
    last_cap = capsmod.kernel_last_cap()
    return HardenPlan(no_new_privs, caps, program, arch, last_cap, shim)


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


def _drop_bounding(shim, caps, last_cap):
    for number in range(last_cap + 1):
        if not caps.bounding >> number & 1 and shim.capbset_read(number):
            shim.capbset_drop(number)


def _set_process_sets(shim, caps, last_cap):
    shim.capset(caps.effective, caps.permitted, caps.inheritable)
    shim.set_keepcaps(False)
    try:
        shim.ambient_clear_all()
    except OSError as e:
        # Kernels before 4.3 have no ambient set (EINVAL): nothing to clear then.
        if e.errno != errno.EINVAL or caps.ambient:
            raise
    for number in range(last_cap + 1):
        if caps.ambient >> number & 1:
            shim.ambient_raise(number)


# --- daemon side -----------------------------------------------------------------------

def set_child_subreaper():
    """Make this process the reaper of its orphaned descendants (a service that double-
    forks stays our child, so the loop reaps it and reports it via on_orphan_reaped).
    Loads the cffi shim (about 0.35 MB RSS). Raises OSError."""
    from pyprocd.process import shim

    shim.set_child_subreaper(True)


def read_pidfile(path):
    """The pid in a pidfile, or None if missing, empty or not a positive number."""
    try:
        with open(path, "rb") as f:
            text = f.read(64)
    except OSError:
        return None
    try:
        pid = int(text.split()[0]) if text.split() else 0
    except ValueError:
        return None
    return pid if pid > 0 else None


def _parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[1]) if fields[0] != b"Z" else None


def pidfile_candidate(path, exited_pid, parent=None):
    """The service's new main pid if the pidfile names one now, else None: a live
    process other than the exited one (and, when `parent` is given, whose parent is
    `parent` -- pass os.getpid() when subreaper, so a stale pidfile naming an unrelated
    process is never adopted and later killed)."""
    pid = read_pidfile(path)
    if pid is None or pid == exited_pid:
        return None
    ppid = _parent_of(pid)
    if ppid is None:          # gone, or a zombie
        return None
    if parent is not None and ppid != parent:
        return None
    return pid


def follow_pidfile(path, exited_pid, *, timeout=5.0, poll=0.05, parent=None,
                   sleep=time.sleep, clock=time.monotonic):
    """Blocking, bounded: wait up to `timeout` s for the pidfile to name the new pid.
    For tools and tests; the daemon uses follow_pidfile_async."""
    deadline = clock() + timeout
    while True:
        pid = pidfile_candidate(path, exited_pid, parent)
        if pid is not None or clock() >= deadline:
            return pid
        sleep(min(poll, max(0.0, deadline - clock())))


def follow_pidfile_async(loop, path, exited_pid, callback, *, timeout=5.0, poll=0.05,
                         parent=None):
    """Non-blocking: polls with loop.call_later and calls callback(pid_or_None) once.
    Returns a cancel() function."""
    deadline = loop.time() + timeout
    state = {"timer": None, "done": False}

    def check():
        if state["done"]:
            return
        pid = pidfile_candidate(path, exited_pid, parent)
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
