"""Crash-survival state: what the daemon runs, kept on tmpfs, written cheaply.

The state file (default /var/run/pyprocd/state.json, tmpfs on OpenWrt, so
writes cost no flash wear) holds the manager's `export_state()`: every
service's submitted message(s) and every instance's pid, start time (as
/proc/<pid>/stat's starttime, in clock ticks since boot), respawn count and
flags. A daemon started after a crash (by --monitor or by hand, even after
SIGKILL) loads it and calls `import_state()`, which re-creates the services
and adopts the live pids instead of starting duplicates.

Writes are debounced: a burst of changes (a `service set` of 1000 instances)
gives one write `DEBOUNCE` seconds after the first change (longer when writes
are slow: at least 10x the last write's duration), and nothing is written
while nothing changes (no periodic wake-up). A write is atomic
(temporary file + rename), so a crash mid-write leaves the previous state.
What a debounce could lose is in the journal (`<state>.journal`): one line
per process started or exited, written before the started process may run
(the spawner holds it on a pipe until then). A restarted daemon applies the
journal to the snapshot: it takes back a process started just before the
crash instead of starting a second one, and stops what it started for a
change the snapshot never got (a `set` cut short by the crash).

Upgrades: the file, like the re-exec hand-over, carries the one format
number (core.snapshot.STATE_FORMAT); `migrate()` brings an older document up
to it one step per format, and every field is read with a default.
tests/daemon/golden holds what the format-1 daemon wrote.

Instance stdout/stderr pipes: their read ends die with the daemon, the pipes
themselves live on in the instances (write ends). The new daemon reopens each
one through /proc/<pid>/fd/<1|2> when the inode matches the recorded one, and
reads what was written meanwhile. Lost: a partial line held in the dead
daemon's memory, lines it had read but not yet logged, and — worse — an
instance that writes while no daemon runs gets EPIPE/SIGPIPE (most programs
die of it, and are then respawned if respawn is on). The exit *status* of an
adopted instance is unknown (it is no longer our child: the pidfd says
"exited", waitpid cannot tell how). A live re-exec (reexec.py) keeps all of it.
"""

import os

# The state file's format is the one STATE_FORMAT of the core's export (also
# the re-exec hand-over's).
from pyprocd.core.snapshot import STATE_FORMAT

DEBOUNCE = 0.2  # seconds between the first change and the write

_CLK_TCK = None


def proc_start_time(pid, zombie_ok=False):
    """Start time of pid (clock ticks since boot, /proc/<pid>/stat field 22),
    or None if there is no such process (or it is a zombie, unless zombie_ok:
    a zombie child of ours still has an exit status to collect).

    Together with the pid it names one process for the lifetime of the
    system: a recycled pid gets a later start time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data.rpartition(b")")[2].split()
    if len(fields) < 20 or (fields[0] == b"Z" and not zombie_ok):
        return None
    return int(fields[19])  # field 22 overall: fields[0] is field 3 (state)


def is_same_process(pid, start_time, zombie_ok=False):
    return start_time is not None and proc_start_time(pid, zombie_ok) == start_time


def clock_ticks():
    global _CLK_TCK
    if _CLK_TCK is None:
        _CLK_TCK = os.sysconf("SC_CLK_TCK")
    return _CLK_TCK


def uptime_ticks():
    """Now, in the same unit and origin as proc_start_time()."""
    with open("/proc/uptime") as f:
        return int(float(f.read().split()[0]) * clock_ticks())


def write_atomic(path, data):
    """Write bytes to path atomically (tmp + rename). tmpfs: no fsync needed
    for crash survival of the daemon (the kernel keeps the page cache)."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(tmp, path)


def encode(state):
    """Compact JSON, written without the `json` package.

    The state is rewritten while the daemon runs; importing `json` (which
    drags in `re`) would cost ~1 MB of RAM for the daemon's whole life. The
    C string escaper json itself uses comes from `_json`, alone. Each
    container is joined as soon as it is done, so a write holds about twice
    the file in memory, not a list of every token in it (the heap a burst
    touches stays with the daemon).
    """
    return _dump(state).encode()


def _dump(value):
    from _json import encode_basestring_ascii as quote

    if isinstance(value, str):
        return quote(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot store {value!r} in the state")
        return float.__repr__(value)
    if isinstance(value, dict):
        return "{" + ",".join([_member(key, item, quote) for key, item in value.items()]) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([_dump(item) for item in value]) + "]"
    raise TypeError(f"cannot store {type(value).__name__} in the state")


def _member(key, item, quote):
    if not isinstance(key, str):
        raise TypeError(f"state keys must be strings, not {type(key).__name__}")
    return quote(key) + ":" + _dump(item)


def decode(data):
    """Parse a state blob; None (and the reason) if it is unusable."""
    import json  # only when taking over after a crash: not in a normal daemon's memory

    try:
        state = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        return None, f"unreadable state ({e})"
    return migrate(state)


def _from_format_1(doc):
    """Format 1 (up to e510d50): the state file said "version", the hand-over
    "format", both with a manager export of "format" 1; no journal."""
    doc.pop("version", None)
    doc["format"] = 2
    doc.setdefault("journal_seq", 0)
    if isinstance(doc.get("manager"), dict):
        doc["manager"]["format"] = 2
    return doc


# format -> step to the next format. A new format adds one step here (and
# its readers take new fields with defaults, so most changes need none).
MIGRATIONS = {1: _from_format_1}


def migrate(doc):
    """A persisted document (state file or hand-over), brought up to
    STATE_FORMAT: (doc, None), or (None, why it cannot be used)."""
    if not isinstance(doc, dict):
        return None, "not a state document"
    found = doc.get("format", doc.get("version"))
    if type(found) is not int or not 1 <= found:
        return None, f"state of an unknown format ({found!r})"
    if found > STATE_FORMAT:
        return None, f"state written by a newer pyprocd (format {found}, this one reads up to {STATE_FORMAT})"
    while found < STATE_FORMAT:
        doc = MIGRATIONS[found](doc)
        found = doc["format"]
    return doc, None


def load(path):
    """(state or None, reason if ignored). A missing file is no error."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"{path}: {e.strerror}"
    state, reason = decode(data)
    return state, (f"{path}: {reason}" if reason else None)


class StateBusy(Exception):
    pass


class StateLock:
    """`<state>.lock`, fcntl-locked for the daemon's life: two daemons never
    share a state file (the second runs without crash survival), and a dead
    daemon's lock is gone at once, so its successor takes the state over.
    Re-taken after a live re-exec (the fd is close-on-exec)."""

    @classmethod
    def claim(cls, path):
        from pyprocd.daemon.pidfile import _lock_holder, _same_file, _try_lock

        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock_path = f"{path}.lock"
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if not _try_lock(fd):
                holder = _lock_holder(fd)
                os.close(fd)
                raise StateBusy(f"{path} is in use by another daemon (pid {holder})")
            if _same_file(fd, lock_path):
                return cls(fd, lock_path)
            os.close(fd)  # its owner removed it meanwhile: take the new one

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path

    def release(self, remove=False):
        """Remove (only while holding the lock, so nobody else uses it) and unlock."""
        if self.fd is None:
            return
        if remove:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        os.close(self.fd)
        self.fd = None


class StateFile:
    """Keeps `path` in step with the manager: the manager's recorder.

    Two parts, so that nothing the daemon did is lost in a crash and yet a
    burst costs little:

    * the snapshot (`path`): the whole export, one debounced write per burst
      of changes (`changed()`), atomic (temporary file + rename);
    * the journal (`path.journal`): one appended line per process started or
      exited (`spawned()`, `exited()`), written before the daemon does
      anything else, so a crash between two spawns of a big `set` still
      names every process. Each line has a sequence number; the snapshot
      says up to which number it covers, and a snapshot write empties the
      journal.

    Inactive (every call a no-op) until `start(export)`: export() -> the
    manager's JSON-able state (its export_state()).
    """

    def __init__(self, loop, path, log=None, debounce=DEBOUNCE, identity=""):
        self.loop = loop
        self.path = path
        self.journal_path = f"{path}.journal"
        self.log = log
        self.debounce = debounce
        self.identity = identity
        self.writes = 0
        self.last_write_s = 0.0
        self._export = None
        self._journal_fd = None
        self._seq = 0  # journal lines written by this daemon
        self._timer = None
        self._failed = False

    @property
    def active(self):
        return self._export is not None

    def start(self, export):
        """Begin recording: open the journal, write a full snapshot."""
        self._export = export
        try:
            self._journal_fd = os.open(
                self.journal_path,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            self._complain(f"cannot open {self.journal_path}: {e.strerror}")
        self.flush()

    def changed(self, *_ignored):
        if self._export is not None and self._timer is None:
            # A write of 1000 instances takes ~30 ms here: wait at least ten
            # times the last write so writing never takes over 10% of the CPU.
            delay = max(self.debounce, 10 * self.last_write_s)
            self._timer = self.loop.call_later(delay, self.flush)

    def spawned(self, service, instance, pid, proc):
        self._journal(["spawn", service, instance, pid, describe_for_file(proc)])

    def exited(self, service, instance, pid, status):
        self._journal(["exit", service, instance, pid, status])

    def _journal(self, record):
        if self._export is None:
            return
        self.changed()
        if self._journal_fd is None:
            return
        self._seq += 1
        record.append(self._seq)
        try:
            os.write(self._journal_fd, encode(record) + b"\n")
        except OSError as e:
            self._complain(f"cannot write {self.journal_path}: {e.strerror}")

    def _complain(self, message):
        if not self._failed and self.log:  # say it once, not per change
            self.log(message)
        self._failed = True

    def flush(self):
        """Write the snapshot now (also used right before a clean exit or an exec)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._export is None:
            return
        started = self.loop.time()
        state = {"format": STATE_FORMAT, "daemon_pid": os.getpid(),
                 "identity": self.identity, "journal_seq": self._seq,
                 "manager": self._export()}
        try:
            write_atomic(self.path, encode(state))
            self.last_write_s = self.loop.time() - started
        except OSError as e:
            self._complain(f"cannot write state file {self.path}: {e.strerror}")
            return
        if self._journal_fd is not None:
            try:
                os.ftruncate(self._journal_fd, 0)  # all in the snapshot now
            except OSError:
                pass  # harmless: its lines are older than journal_seq
        self._failed = False
        self.writes += 1

    def remove(self):
        """Clean shutdown stopped every instance: nothing to take back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._export = None
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        for path in (self.path, self.journal_path):
            try:
                os.unlink(path)
            except OSError:
                pass


def load_journal(path, after_seq):
    """Journal records newer than the snapshot (seq > after_seq), oldest first.

    A torn last line (a crash in the middle of the write) is skipped."""
    import json  # only when taking over after a crash

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    records = []
    for line in data.split(b"\n"):
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if (type(record) is list and len(record) == 6 and record[0] in ("spawn", "exit")
                and type(record[5]) is int and record[5] > after_seq):
            records.append(record)
    return records


def apply_journal(manager_state, records):
    """Bring a loaded snapshot up to date with the journal, in place.

    Returns [(pid, proc description)] of processes started for instances
    the snapshot does not know (a `set` the crash interrupted): nobody
    supervises them, the caller stops them.
    """
    unknown = []
    entries = {}
    for svc in manager_state.get("services", ()):
        for entry in list(svc.get("instances", ())) + list(svc.get("stopping", ())):
            entries[(svc.get("name"), entry.get("name"))] = entry
    for kind, service, instance, pid, detail, _seq in records:
        entry = entries.get((service, instance))
        if kind == "spawn":
            if entry is None:
                unknown.append((pid, detail))
                continue
            entry.update(pid=pid, proc=detail, runtime=0, halt=False, restart=False,
                         failed=False)
            entry.pop("respawn_in", None)
            entry.pop("exit_status", None)
        elif entry is not None and entry.get("pid") == pid:
            entry["exit_status"] = detail  # the real status: the exit rules apply
    return unknown


def describe_for_file(proc):
    """What a restarted daemon needs to re-attach a process: its start time
    and its log pipes (by inode: they are reopened through /proc/<pid>/fd)."""
    from pyprocd.common import LOG_ERR

    pipes = []
    for lg in proc.loggers:
        if lg.fd is None:
            continue
        try:
            ino = os.fstat(lg.fd).st_ino
        except OSError:
            continue
        # The spawner logs the child's stdout at LOG_INFO, stderr at LOG_ERR.
        child_fd = 2 if lg.priority & 7 == LOG_ERR else 1
        pipes.append({"child_fd": child_fd, "ino": ino, "ident": lg.ident,
                      "priority": lg.priority})
    return {"start": start_ticks(proc), "pipes": pipes}


def start_ticks(proc):
    """proc's /proc start time: the spawner's Running keeps it in its
    start_ticks field, filled here when it was not read at start."""
    if proc.start_ticks is None:
        proc.start_ticks = proc_start_time(proc.pid, zombie_ok=True)
    return proc.start_ticks
