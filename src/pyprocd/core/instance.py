"""The instance state machine: start, stop, restart, exit handling, respawn, watchdog.

Follows procd's instance.c semantics (spec §3.5-3.7, §3.15-3.16, §4) with
its flags: `halt` (a requested stop; the instance goes away on exit),
`restart` (start again on exit), `respawn` (restart unrequested exits;
cleared by every requested stop, back only with a new config).
"""

import _signal as signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)

from pyprocd.common import LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING, SpawnError

EXIT_HISTORY = 5


class ExitRecord:
    __slots__ = ("pid", "exit_code", "signal", "runtime", "respawn_count", "error")

    def __init__(self, pid, exit_code, sig, runtime, respawn_count, error):
        self.pid = pid
        self.exit_code = exit_code
        self.signal = sig
        self.runtime = runtime
        self.respawn_count = respawn_count
        self.error = error

    def as_dict(self):
        d = {"pid": self.pid, "exit_code": self.exit_code}
        if self.signal:
            d["signal"] = self.signal
        d["runtime_ms"] = min(int(self.runtime * 1000), 2**31 - 1)
        d["respawn_count"] = self.respawn_count
        if self.error:
            d["error"] = self.error
        return d


def exit_code_of(status):
    """procd's exit_code of a raw wait status: the exit status, 128 + signal
    for a death by signal, else 1; (code, signal). Linux's encoding, decoded
    here so that the core needs no `os`."""
    if status is None:
        return 0, 0  # adopted process: its status cannot be collected
    if type(status) is not int:
        return 1, 0
    low = status & 0x7F
    if low == 0:  # WIFEXITED
        return (status >> 8) & 0xFF, 0
    if low != 0x7F:  # WIFSIGNALED (0x7f: stopped)
        return 128 + low, low
    return 1, 0


class Instance:
    def __init__(self, manager, service, spec):
        self.manager = manager
        self.service = service
        self.spec = spec
        self.name = spec.name
        self.proc = None  # the spawner's Running while a process exists
        self.pid = 0
        self.start_time = 0.0
        self.exit_code = 0
        self.respawn = spec.respawn
        self.respawn_count = 0
        self.halt = False
        self.restart = False
        self.failed = False  # gave up after a crash loop (or could not exec)
        self.spawn_error = None
        self.kill_timer = None
        self.respawn_timer = None
        self.watchdog_timer = None
        self.wd_mode = spec.watchdog_mode
        self.wd_timeout = spec.watchdog_timeout
        self.wd_self_managed = False
        self.version = service.version
        self.exits = []  # the last EXIT_HISTORY exits, oldest first (a deque costs 0.7 kB each)
        self.list_cache = None  # the api's `list` entry, kept while nothing it shows changes

    # -- helpers -------------------------------------------------------------

    @property
    def label(self):
        return f"{self.service.name}::{self.name}"

    @property
    def running(self):
        return self.pid != 0

    @property
    def state(self):
        """The one name of where this instance stands: "running", "stopping"
        (asked to stop, not gone yet), "respawning" (waiting out its respawn
        timeout), "failed" (gave up: crash loop or cannot start) or "stopped".
        The state dump, the crash-survival state and `list` all read it."""
        if self.running:
            return "stopping" if self.halt else "running"
        if self.failed:
            return "failed"
        if self.respawn_timer is not None:
            return "respawning"
        return "stopped"

    # -- transitions asked for from outside (methods, signals) ------------------

    def revive(self):
        """A failed instance starts again with its crash counter reset.
        True if it was failed (and so is started)."""
        if self.state != "failed":
            return False
        self.respawn_count = 0
        self.failed = False
        self.respawn = self.spec.respawn
        self.start()
        return True

    def set_watchdog(self, mode=None, timeout=None, max_timeout=None):
        """The `watchdog` method: new mode/timeout (the instance's own from
        then on: a re-submitted config no longer changes them), and a pet."""
        if mode is not None:
            self.wd_mode = mode if 0 <= mode <= 2 else 0
        if timeout is not None:
            self.wd_timeout = timeout if max_timeout is None else min(timeout, max_timeout)
        if mode is not None or timeout is not None:
            self.wd_self_managed = True
        self.pet_watchdog()

    def set_data(self, data):
        """`set_data` for this instance: data is never compared for restart."""
        self.spec = self.spec.replace(data=data)

    def forget(self):
        """Drop every timer (a registry being thrown away, e.g. a state that
        could not be taken over): nothing of it may fire later."""
        self._cancel("kill_timer", "respawn_timer", "watchdog_timer")

    def _log(self, message, priority=LOG_NOTICE):
        self.manager.log(message, priority)

    def _cancel(self, *names):
        for name in names:
            timer = getattr(self, name)
            if timer is not None:
                timer.cancel()
                setattr(self, name, None)

    def _kill(self, sig):
        group = self.spec.group_kill
        return self.manager.spawner.kill(self.pid, sig, group=group)

    # -- start -----------------------------------------------------------------

    def start(self):
        if self.running:
            if self.halt:
                self.restart = True  # being stopped: start again once it exits
            return
        spec = self.spec
        if spec.problems or spec.errors:
            self._log(f"Not starting instance {self.label}, an error was indicated")
            return
        if not spec.command:
            self._log(f"Not starting instance {self.label}, command not set")
            return
        self.restart = self.halt = False
        self._cancel("respawn_timer")
        # When something records, the process must be on record before it may
        # run: a forked child waits for that; one the spawner starts with
        # posix_spawn (it runs at once) is announced before it exists.
        # Our pidfile too is written before the process may run: a service that
        # daemonises puts its successor's pid there, and a write of ours landing
        # after that would hide the successor. So such an instance is never
        # started the posix_spawn way.
        gated = self.manager.records_spawns()
        on_forked = self._forked if gated or spec.pidfile else None
        announce = self._announce if gated and not spec.pidfile else None
        try:
            proc = self.manager.spawner.spawn(spec, self._exited, on_forked, announce=announce)
        except SpawnError as e:
            self.spawn_error = str(e)
            self.failed = True
            self._log(f"Not starting instance {self.label}: {e}", LOG_ERR)
            return
        if on_forked is None:
            self._forked(proc)
        self.proc = proc
        self.pid = proc.pid
        self.start_time = self.manager.loop.time()
        self.spawn_error = None
        self.failed = False
        self._arm_watchdog()
        self.manager.instance_event("instance.start", self)

    def _forked(self, proc):
        # On record before the process may run, and so before the next spawn.
        self.manager.instance_spawned(self, proc)
        if self.spec.pidfile:
            self.manager.write_pidfile(self.spec.pidfile, proc.pid)

    def _announce(self, identity):
        self.manager.instance_intended(self, identity)

    def respawn_start(self):
        self.respawn_timer = None
        self.start()
        self.manager.queue_running(self.service.name)

    # -- stop / restart --------------------------------------------------------

    def stop(self, halt):
        """Requested stop. halt=True: the instance goes away once it has exited."""
        self._cancel("respawn_timer")
        if not self.running:
            if halt:
                self.manager.instance_gone(self)
            return
        self.halt = halt
        self.restart = self.respawn = False
        self._terminate()

    def restart_now(self):
        """Config change or watchdog: reload_signal if set, else stop and start again."""
        if not self.running:
            return
        if self.spec.reload_signal:
            self._kill(self.spec.reload_signal)
            return
        self.halt = True
        self.restart = True
        self._terminate()

    def _terminate(self):
        self._kill(signal.SIGTERM)
        # As procd: SIGKILL follows only for a stop that takes the instance
        # down for good or for a restart (halt); `state {"spawn": false}`
        # asks with SIGTERM alone, and a program that ignores it runs on.
        if self.halt and self.kill_timer is None:
            self.kill_timer = self.manager.loop.call_later(self.spec.term_timeout, self._term_timeout)

    def _term_timeout(self):
        self.kill_timer = None
        if self.running and self.halt:
            self._log(f"Instance {self.label} pid {self.pid} not stopped on SIGTERM, sending SIGKILL")
            self._kill(signal.SIGKILL)

    # -- watchdog --------------------------------------------------------------

    def _arm_watchdog(self):
        self._cancel("watchdog_timer")
        if self.wd_mode and self.running:
            self.watchdog_timer = self.manager.loop.call_later(self.wd_timeout, self._watchdog_expired)

    def pet_watchdog(self):
        self._arm_watchdog()

    def _watchdog_expired(self):
        self.watchdog_timer = None
        self._log(f"Instance {self.label} pid {self.pid} watchdog timeout expired", LOG_WARNING)
        if self.respawn:
            self.restart_now()
        else:
            self.stop(halt=True)

    # -- exit --------------------------------------------------------------

    def _exited(self, status, exec_error):
        if not self._follow_pidfile(status, exec_error):
            self._handle_exit(status, exec_error)

    def _handle_exit(self, status, exec_error):
        pid = self.pid
        runtime = self.manager.loop.time() - self.start_time
        self.exit_code, sig = exit_code_of(status)
        self.manager.instance_exited(self, pid, status)
        self.pid = 0
        self.proc = None
        self._cancel("kill_timer", "watchdog_timer", "respawn_timer")
        if exec_error:
            self.spawn_error = exec_error
        self._record_exit(pid, sig, runtime, exec_error)
        self.manager.instance_event("instance.stop", self)
        if self.halt:
            if self.spec.pidfile:
                self.manager.remove_pidfile(self.spec.pidfile)
            if self.restart:
                self.start()
            else:
                self.manager.instance_gone(self)
        elif self.restart:
            self.start()
        elif exec_error:
            # Respawning a program that cannot even be executed is a busy
            # loop, not a recovery: show the reason and stop here.
            self.respawn = False
            self.failed = True
            self.manager.instance_event("instance.fail", self, detailed=True)
        elif self.respawn:
            self._respawn_or_give_up(runtime)

    def _follow_pidfile(self, status, exec_error):
        """A service that daemonises exits 0 after writing its real pid to its pidfile.

        Instead of treating that as the end (and respawning a second copy),
        follow the pidfile to the re-parented successor and supervise it.
        Returns True when the exit is taken care of that way (asynchronously).
        """
        spawner = self.manager.spawner
        if (self.halt or self.restart or exec_error or not self.spec.pidfile
                or exit_code_of(status) != (0, 0) or not spawner.can_follow_pidfiles):
            return False
        old_pid = self.pid

        def found(new_pid):
            if new_pid is None or self.pid != old_pid:
                self._handle_exit(status, None)
                return
            # A stop requested while we were looking applies to the successor.
            stopping = self.halt
            self._log(f"Instance {self.label} daemonised: following pid {new_pid} "
                      f"from {self.spec.pidfile}")
            self.proc = spawner.adopt_child(new_pid, self._exited)
            self.pid = new_pid
            self.manager.instance_spawned(self, self.proc)
            if stopping:
                self._terminate()

        spawner.follow_pidfile(self.spec.pidfile, self.proc, found,
                               lambda pid: pid in self.manager.running_pids())
        return True

    def _record_exit(self, pid, sig, runtime, error):
        self.exits.append(ExitRecord(pid, self.exit_code, sig, runtime, self.respawn_count, error))
        del self.exits[:-EXIT_HISTORY]
        how = f"killed by signal {sig}" if sig else f"exit code {self.exit_code}"
        if error:
            how += f" ({error})"
        self._log(
            f"Instance {self.label} pid {pid} exited: {how}, ran {runtime:.3f} s, "
            f"respawn count {self.respawn_count}",
            LOG_ERR if error else LOG_INFO,
        )

    def _respawn_or_give_up(self, runtime):
        spec = self.spec
        if runtime < spec.respawn_threshold:
            self.respawn_count += 1
        else:
            self.respawn_count = 0
        if spec.respawn_retry > 0 and self.respawn_count > spec.respawn_retry:
            self._log(
                f"Instance {self.label} s in a crash loop {self.respawn_count} crashes, "
                f"{int(runtime)} seconds since last crash"
            )
            self.respawn = False
            self.halt = True
            self.failed = True
            self.manager.instance_event("instance.fail", self, detailed=True)
            return
        self.manager.instance_event("instance.respawn", self, detailed=True)
        self.respawn_timer = self.manager.loop.call_later(spec.respawn_timeout, self.respawn_start)

    # -- config update (spec §4.5) -----------------------------------------------

    def update(self, new_spec):
        from pyprocd.core.spec import needs_restart

        changed = needs_restart(self.spec, new_spec, self.wd_self_managed)
        data_changed = self.spec.data != new_spec.data
        if not self.running or self.halt:
            self._take_config(new_spec)
            self.start()
            return
        if changed:
            self.restart_now()  # with the old reload_signal, as procd
        elif data_changed:
            self.manager.data_update_events(self.spec.data, new_spec.data)
        self._take_config(new_spec)

    def _take_config(self, new_spec):
        self.spec = new_spec
        self.respawn = new_spec.respawn
        if not self.wd_self_managed:
            self.wd_mode = new_spec.watchdog_mode
            self.wd_timeout = new_spec.watchdog_timeout
