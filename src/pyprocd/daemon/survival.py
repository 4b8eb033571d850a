"""Taking back running instances: after a crash (state file) or a live re-exec.

The composition root (main.build_daemon) wires it, the state file being
the manager's recorder:

    state_file = StateFile(loop, path, identity=...)
    mgr = ServiceManager(loop, host, recorder=state_file, ...)
    survival = Survival(loop, mgr, life, sink=sink, log=log, state_file=state_file)
    survival.restore()        # before serving requests: adopt what runs
    survival.install()        # signals, the `reexec` method, state-file writes
    ...
    survival.finish()         # clean shutdown (everything stopped)

Signals (pyprocd is not PID 1, so procd's PID-1 meanings do not apply):
  SIGUSR1            log a state dump (every service and instance)
  SIGUSR2            revive every instance that gave up (counters reset)
  REEXEC_SIGNAL      live re-exec (SIGRTMIN+1; `ubus call service reexec`
                     does the same). SIGHUP is left alone: procd ignores it
                     and daemons conventionally read it as "reload config".
"""

import _signal as signal  # C module: `signal` would import enum (~0.8 MB for the daemon's life)
import os

from pyprocd.api.service import call_service
from pyprocd.common import LOG_ERR, LOG_NOTICE, LOG_WARNING
from pyprocd.core.spec import DEFAULT_TERM_TIMEOUT
from pyprocd.core.status import CallError
from pyprocd.daemon import state  # reexec: imported where a re-exec happens (rare)
from pyprocd.daemon.lifecycle import REEXEC_ENV
from pyprocd.process.logsink import PipeLogger
from pyprocd.process.spawn import Running

REEXEC_SIGNAL = signal.SIGRTMIN + 1
# The reply to `service reexec` must leave the socket before the exec.
REEXEC_REPLY_DELAY = 0.05


class Survival:
    def __init__(self, loop, mgr, life, *, sink, log, state_file=None,
                 is_stopping=lambda: False, before_exec=(), extra_handover=None):
        """state_file: the StateFile that is also mgr's recorder (None: no
        crash survival, re-exec only)."""
        self.loop = loop
        self.mgr = mgr
        self.life = life
        self.sink = sink
        self.log = log
        self.state_file = state_file
        self.state_path = state_file.path if state_file is not None else None
        # Which daemon this is (e.g. its ubus socket and object name): a state
        # file written by another daemon (a test run, a second instance on a
        # host) is never taken over.
        self.identity = state_file.identity if state_file is not None else ""
        self._lock = None
        self.before_exec = list(before_exec)  # callables run right before exec (close the bus, ...)
        self.is_stopping = is_stopping  # True once the daemon shuts down: no re-exec then
        # name -> callable() -> JSON-able, handed to the new image
        self.extra_handover = dict(extra_handover or {})
        self._reexec_timer = None

    # -- taking back ---------------------------------------------------------

    def restore(self):
        """Adopt what the previous daemon ran. Returns (adopted, gone) counts."""
        handed = self.life.handed_over
        if handed is not None:
            # Before anything can spawn (children inherit the signal mask):
            # catch and let in the signals held over the exec.
            from pyprocd.daemon import reexec

            reexec.catch_control_signals(self.loop)
            rejected = []
            try:
                if handed.get("refused"):
                    raise ValueError(handed["refused"])
                counts = self.mgr.import_state(handed["manager"], self._adopt_child,
                                               rejected.append)
            except (ValueError, KeyError, TypeError) as e:
                # An upgrade that cannot read its predecessor's state: serve
                # on (empty) rather than die; the children stay ours to reap.
                self._forget_partial_import()
                self.life.handed_over = {"extra": {}}
                self.log(f"re-exec: cannot take the handed-over state: {e!r}; "
                         "its instances run on unsupervised", LOG_ERR)
                return (0, 0)
            self._stop_unknown(_processes_of(rejected))
            # Keep only what main may still ask for; the rest is garbage now.
            self.life.handed_over = {"extra": handed.get("extra") or {}}
            # Children that exited during the exec are zombies: collect them.
            self.loop.call_soon(self.loop.reap_children)
            self.log(f"re-exec done: kept {counts[0]} running instances "
                     f"({counts[1]} exited meanwhile)", LOG_NOTICE)
            return counts
        if not self.state_path or not self._claim_state_file():
            return (0, 0)
        saved, reason = state.load(self.state_path)
        if reason:
            self.log(f"ignoring crash-survival state: {reason}", LOG_WARNING)
        if saved is None:
            return (0, 0)
        if saved.get("identity", "") != self.identity:
            self.log(f"ignoring crash-survival state {self.state_path}: written by another "
                     f"daemon ({saved.get('identity')!r})", LOG_WARNING)
            return (0, 0)
        journal = state.load_journal(f"{self.state_path}.journal", saved.get("journal_seq", 0))
        rejected = []
        try:
            # A process posix_spawn'd just before the crash, not yet on record:
            # found in /proc, it is taken back (or stopped) like a recorded one.
            journal = state.resolve_intents(journal, saved["manager"],
                                            _pids(saved.get("ancestors")) or [1])
            unknown = state.apply_journal(saved["manager"], journal)
            counts = self.mgr.import_state(saved["manager"], self._adopt_foreign,
                                           rejected.append)
        except (ValueError, KeyError, TypeError) as e:
            self._forget_partial_import()
            self.log(f"ignoring crash-survival state {self.state_path}: {e!r}", LOG_ERR)
            return (0, 0)
        self._stop_unknown(unknown + _processes_of(rejected))
        self.log(f"took back {counts[0]} running instances after a daemon restart "
                 f"({counts[1]} died meanwhile)", LOG_NOTICE)
        return counts

    def _forget_partial_import(self):
        """A malformed state must not leave half a registry behind."""
        for svc in self.mgr.services.values():
            for inst in list(svc.instances.values()) + list(svc.stopping):
                if inst.pid:
                    self.loop.unwatch_child(inst.pid)
                inst.forget()
        self.mgr.services.clear()

    def _stop_unknown(self, unknown):
        """Processes nobody can supervise: started for a change the crashed
        daemon never got to record (a `set` cut short), or of an entry the
        state could not give back. Stopped like an instance: SIGTERM,
        SIGKILL after the default term timeout."""
        stopped = 0
        for pid, detail in unknown:
            start = (detail or {}).get("start") if type(detail) is dict else None
            if type(pid) is not int or not state.is_same_process(pid, start):
                continue
            self.loop.watch_child(pid, lambda p, status: None)
            if not state.is_same_process(pid, start):  # pinned by the pidfd: re-check
                self.loop.unwatch_child(pid)
                continue
            _kill_leader(pid, signal.SIGTERM)
            self.loop.call_later(DEFAULT_TERM_TIMEOUT, self._kill_if_left, pid, start)
            stopped += 1
        if stopped:
            self.log(f"stopping {stopped} processes the state does not describe", LOG_WARNING)

    def _kill_if_left(self, pid, start):
        if state.is_same_process(pid, start):
            _kill_leader(pid, signal.SIGKILL)

    def _claim_state_file(self):
        """Lock the state file for our life; on failure run without one."""
        try:
            self._lock = state.StateLock.claim(self.state_path)
        except state.StateBusy as e:
            self.log(f"crash survival disabled: {e}", LOG_WARNING)
        except OSError as e:
            self.log(f"crash survival disabled: {self.state_path}: {e.strerror}", LOG_WARNING)
        if self._lock is None:
            self.state_path = None
            return False
        return True

    def handed_over_extra(self, name):
        handed = self.life.handed_over
        return (handed or {}).get("extra", {}).get(name)

    def _adopt(self, entry, on_exit, zombie_ok):
        pid = entry["pid"]
        start = (entry.get("proc") or {}).get("start")
        if not state.is_same_process(pid, start, zombie_ok):
            return None
        self.loop.watch_child(pid, lambda p, status: on_exit(status, None))
        # The pidfd is open now and pins the process: check again, so that a
        # pid recycled between the first check and pidfd_open is never adopted.
        if not state.is_same_process(pid, start, zombie_ok):
            self.loop.unwatch_child(pid)
            return None
        proc = Running(pid, None)
        proc.start_ticks = start
        elapsed = max(0.0, (state.uptime_ticks() - start) / state.clock_ticks())
        return proc, elapsed

    def _adopt_foreign(self, entry, on_exit):
        """After a crash: the process is not our child any more. Its log pipes'
        read ends died with the old daemon, but the pipes live on while the
        instance holds the write ends: reopen them through /proc/<pid>/fd
        (same pipe inode as recorded, so never anything else), and bytes it
        wrote meanwhile are still there to read."""
        found = self._adopt(entry, on_exit, zombie_ok=False)
        if found is not None:
            for log in (entry.get("proc") or {}).get("pipes", ()):
                logger = self._reopen_pipe(entry["pid"], log)
                if logger is not None:
                    found[0].loggers.append(logger)
        return found

    def _reopen_pipe(self, pid, log):
        path = f"/proc/{pid}/fd/{log['child_fd']}"
        try:
            if os.stat(path).st_ino != log["ino"]:
                return None  # the instance redirected that fd: not ours to read
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        if os.fstat(fd).st_ino != log["ino"]:
            os.close(fd)
            return None
        return PipeLogger(self.loop, fd, self.sink, log["ident"], log["priority"])

    def _adopt_child(self, entry, on_exit):
        """After a re-exec: still our child; take its log pipes back too."""
        found = self._adopt(entry, on_exit, zombie_ok=True)
        if found is None:
            for log in (entry.get("proc") or {}).get("logs", ()):
                _close_quietly(log["fd"])
            return None
        proc = found[0]
        for log in entry["proc"].get("logs", ()):
            os.set_inheritable(log["fd"], False)
            logger = PipeLogger(self.loop, log["fd"], self.sink, log["ident"], log["priority"])
            logger.buffer = log["buffer"].encode("latin-1")
            proc.loggers.append(logger)
        return found

    # -- describing processes for the state ----------------------------------------

    def _describe_for_exec(self, proc):
        logs = [{"fd": lg.fd, "ident": lg.ident, "priority": lg.priority,
                 "buffer": lg.buffer.decode("latin-1")}
                for lg in proc.loggers if lg.fd is not None]
        return {"start": state.start_ticks(proc), "logs": logs}

    # -- running ---------------------------------------------------------------

    def install(self):
        if (self.state_file is not None and self.state_path
                and (self._lock is not None or self._claim_state_file())):
            self.state_file.start(lambda: self.mgr.export_state(state.describe_for_file))
        self.loop.add_signal_handler(signal.SIGUSR1, lambda s: self.log_dump())
        self.loop.add_signal_handler(signal.SIGUSR2, lambda s: call_service(self.mgr, "revive", {}))
        self.loop.add_signal_handler(REEXEC_SIGNAL, lambda s: self.request_reexec(0))

    def reexec_method(self, _manager, _args):
        """`ubus call service reexec`: reply, then re-exec (beyond procd)."""
        if self.is_stopping():
            raise CallError("shutting down")
        self.request_reexec(REEXEC_REPLY_DELAY)
        return {"pid": os.getpid()}

    def request_reexec(self, delay):
        # From a timer, never straight from a signal handler: signals read in
        # the same wake-up (a SIGTERM next to the re-exec signal) are all
        # dispatched first; a shutdown they start cancels the re-exec.
        if self._reexec_timer is None:
            self._reexec_timer = self.loop.call_later(delay, self.reexec)

    def reexec(self):
        """Exec our own (possibly upgraded) code, keeping every instance."""
        self._reexec_timer = None
        if self.is_stopping():
            # The new image would not know it was asked to stop.
            self.log("re-exec refused: shutting down", LOG_WARNING)
            return
        for hook in self.before_exec:
            hook()
        if self.state_file is not None:
            self.state_file.flush()  # a failed exec or a crash during it: still covered
        handover = {"manager": self.mgr.export_state(self._describe_for_exec),
                    "extra": {name: get() for name, get in self.extra_handover.items()}}
        keep = [log["fd"] for svc in handover["manager"]["services"]
                for inst in svc["instances"] + svc["stopping"]
                for log in (inst.get("proc") or {}).get("logs", ())]
        pidfile = self.life.pidfile
        if pidfile is not None and pidfile.fd is not None:
            handover["pidfile"] = {"path": pidfile.path, "fd": pidfile.fd}
            keep.append(pidfile.fd)
        self.log(f"re-executing ({sum(len(s['instances']) for s in handover['manager']['services'])}"
                 " instances kept)", LOG_NOTICE)
        from pyprocd.daemon import reexec

        try:
            reexec.handover(handover, keep, REEXEC_ENV, self.loop.drain_signals)
        except OSError as e:
            self.log(f"re-exec failed, running on: {e}", LOG_ERR)

    def log_dump(self):
        for line in dump_lines(self.mgr):
            self.log(line, LOG_NOTICE)

    def finish(self):
        """Clean shutdown: every instance was stopped, nothing to take back."""
        if self.state_file is not None:
            self.state_file.remove()
        if self._lock is not None:
            self._lock.release(remove=True)
            self._lock = None


def dump_lines(mgr):
    """Human-readable state: one line per service and per instance."""
    lines = [f"state dump: {len(mgr.services)} services"]
    for name in sorted(mgr.services):
        svc = mgr.services[name]
        lines.append(f"service {name}: {len(svc.instances)} instances"
                     + ("" if svc.autostart else ", autostart off")
                     + (f", {len(svc.stopping)} stopping" if svc.stopping else ""))
        for inst_name in sorted(svc.instances):
            inst = svc.instances[inst_name]
            exits = ", ".join(
                f"pid {e.pid} code {e.exit_code} after {e.runtime:.1f}s" for e in inst.exits)
            lines.append(
                f"  {name}::{inst_name} {inst.state}"
                + (f" pid {inst.pid}" if inst.running else f" exit_code {inst.exit_code}")
                + f" respawn_count {inst.respawn_count}"
                + (f" last exits [{exits}]" if exits else ""))
    return lines


def _processes_of(entries):
    """(pid, process description) of the state entries that name a process."""
    return [(entry.get("pid"), entry.get("proc")) for entry in entries
            if type(entry) is dict and entry.get("pid")]


def _pids(value):
    return [pid for pid in value if type(pid) is int] if type(value) is list else []


def _kill_leader(pid, sig):
    """Signal pid, and its process group when it leads one (group_kill
    instances start a session of their own)."""
    try:
        os.kill(-pid if os.getpgid(pid) == pid else pid, sig)
    except OSError:
        pass


def _close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass
