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
per process started or exited, written before the started process may run.
A forked child waits on a pipe until its line is written. A process started
with posix_spawn runs at once, so its line cannot come first: an "intent"
line does, written right before posix_spawn, naming the instance, the time
and what the process will look like in /proc (its command line, its log
pipes). A restarted daemon applies the journal to the snapshot: it takes
back a process started just before the crash instead of starting a second
one, finds in /proc the process of an intent the crash left without its
"spawn" line (`find_intended`), and stops what it started for a change the
snapshot never got (a `set` cut short by the crash).

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
import time  # built in (and loaded by the loop anyway)

# The state file's format is the one STATE_FORMAT of the core's export (also
# the re-exec hand-over's).
from pyprocd.core.snapshot import STATE_FORMAT

DEBOUNCE = 0.2  # seconds between the first change and the write

# A test hook for crash-survival tests, read once when the state file is set
# up: "intent:N" makes the daemon SIGKILL itself right after its N-th intent
# line is written (before that posix_spawn), "spawn:N" right before its N-th
# spawn line is written (after that process started). Unset in normal use.
CRASH_ENV = "PYPROCD_TEST_CRASH"

_CLK_TCK = None


def proc_start_time(pid, zombie_ok=False):
    """Start time of pid (clock ticks since boot, /proc/<pid>/stat field 22),
    or None if there is no such process (or it is a zombie, unless zombie_ok:
    a zombie child of ours still has an exit status to collect).

    Together with the pid it names one process for the lifetime of the
    system: a recycled pid gets a later start time.
    """
    fields = _stat_fields(pid)
    if fields is None or (fields[0] == b"Z" and not zombie_ok):
        return None
    return int(fields[19])  # field 22 overall: fields[0] is field 3 (state)


def _stat_fields(pid):
    """/proc/<pid>/stat from field 3 (state) on, or None if there is no such process."""
    try:
        # One read of the raw fd (the file is far below 4 KiB): read right after
        # each spawn, where a buffered file object costs about twice as much.
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data.rpartition(b")")[2].split()
    return fields if len(fields) >= 20 else None


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


def boot_ticks():
    """uptime_ticks() without opening a file: the kernel counts a process's
    start time on the boot clock (suspend included), as /proc/uptime does.
    One tick early, so that a process started after this call never seems
    to have started before it (both are rounded down)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * clock_ticks()) - 1


def ancestors():
    """Our parent, its parent, ... up to 1: where our children go when we die
    (the nearest child subreaper among them, else init). A parent that exits
    while we walk re-parents us: then walk again from the new one."""
    for _attempt in range(5):
        chain = []
        pid = os.getppid()
        while pid > 1 and len(chain) < 64:
            fields = _stat_fields(pid)
            if fields is None:
                break
            chain.append(pid)
            pid = int(fields[1])
        else:
            return chain + [1]
    return chain + [1]


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


_record_encoder = None


def encode_record(record):
    """One journal line's JSON, by the C encoder the `json` package drives
    (in `_json`, loaded for encode() anyway): ten times faster than encode()
    on the per-spawn path. Journal records are built here from names,
    numbers and string-keyed tables, so none of the checks encode() makes
    can fail; an interpreter without that encoder gets encode()."""
    global _record_encoder
    if _record_encoder is None:
        try:
            from _json import encode_basestring_ascii, make_encoder

            _record_encoder = make_encoder(None, _unstorable, encode_basestring_ascii, None,
                                           ":", ",", False, False, False)
            _record_encoder([0], 0)
        except (ImportError, TypeError, ValueError):
            _record_encoder = False
    if _record_encoder is False:
        return encode(record)
    return "".join(_record_encoder(record, 0)).encode()


def _unstorable(value):
    raise TypeError(f"cannot store {type(value).__name__} in the state")


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
      exited (`spawned()`, `exited()`), and one per process about to be
      started with posix_spawn (`intended()`), written before the daemon does
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
        self._ancestors = None  # where our orphans go (see ancestors()), read at start
        self._crash_at = _crash_point(os.environ.get(CRASH_ENV))

    @property
    def active(self):
        return self._export is not None

    def start(self, export):
        """Begin recording: open the journal, write a full snapshot."""
        self._export = export
        if self._ancestors is None:
            self._ancestors = ancestors()
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

    def intended(self, service, instance, identity):
        """A process is about to be started with posix_spawn: on file before
        it exists, with the time and what it will look like in /proc
        (identity: its "argv", the "path" executed, its log "pipes"), so
        that a daemon killed before spawned() still finds it."""
        self._journal(["intent", service, instance, boot_ticks(), identity])
        if self._crash_at is not None:
            self._crash_if_asked("intent")

    def spawned(self, service, instance, pid, proc):
        if self._crash_at is not None:
            self._crash_if_asked("spawn")
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
            os.write(self._journal_fd, encode_record(record) + b"\n")
        except OSError as e:
            self._complain(f"cannot write {self.journal_path}: {e.strerror}")

    def _crash_if_asked(self, point):
        """The CRASH_ENV test hook: die like a SIGKILLed daemon, here."""
        if self._crash_at[0] == point:
            self._crash_at[1] -= 1
            if self._crash_at[1] == 0:
                os.kill(os.getpid(), 9)

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
                 "ancestors": self._ancestors or [1], "manager": self._export()}
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


def _crash_point(text):
    """CRASH_ENV's "intent:N" / "spawn:N" -> [point, N]; None if unset or unreadable."""
    point, _, count = (text or "").partition(":")
    if point in ("intent", "spawn") and count.isdigit() and int(count) > 0:
        return [point, int(count)]
    return None


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
        if (type(record) is list and len(record) == 6 and record[0] in ("spawn", "exit", "intent")
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
    # (service, instance) -> its entries, the live instance's first: a removed
    # instance still stopping may share its name with a new one, and only the
    # new one starts processes.
    entries = {}
    for svc in manager_state.get("services", ()):
        for entry in list(svc.get("instances", ())) + list(svc.get("stopping", ())):
            entries.setdefault((svc.get("name"), entry.get("name")), []).append(entry)
    for kind, service, instance, pid, detail, _seq in records:
        if kind == "intent":
            continue  # find_intended() turned those with a process into spawn records
        named = entries.get((service, instance), ())
        if kind == "spawn":
            if not named:
                unknown.append((pid, detail))
                continue
            named[0].update(pid=pid, proc=detail, runtime=0, halt=False, restart=False,
                            failed=False)
            named[0].pop("respawn_in", None)
            named[0].pop("exit_status", None)
            continue
        for entry in named:
            if entry.get("pid") == pid:
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


def resolve_intents(records, manager_state, parents):
    """The journal with each intent no later line of its instance answers (the
    daemon died between writing it and recording the spawn) replaced by a
    spawn record of the process found for it in /proc; an intent with no
    such process (the daemon died before posix_spawn) is left as it is and
    means nothing.

    parents: the pids the dead daemon's orphans may have been handed to
    (its snapshot's "ancestors")."""
    unanswered = {}
    for index, record in enumerate(records):
        key = (record[1], record[2])
        if record[0] == "intent":
            unanswered[key] = index
        else:
            unanswered.pop(key, None)
    if not unanswered:
        return records
    intents = [records[i] for i in sorted(unanswered.values())]
    taken = _recorded_pids(manager_state, records) | {os.getpid()}
    found = find_intended(intents, taken, set(parents))
    resolved = list(records)
    for index in sorted(unanswered.values()):
        _kind, service, instance, _ticks, identity, seq = records[index]
        hit = found.get(seq)
        if hit is not None:
            pid, start = hit
            resolved[index] = ["spawn", service, instance, pid,
                               {"start": start, "pipes": _pipes_of(identity, pid)}, seq]
    return resolved


def find_intended(intents, taken, parents):
    """{intent seq: (pid, start time)} for the intents whose process runs.

    A process is an intent's only if all of these hold, so that nothing
    else is ever adopted or stopped: it started no earlier than the intent
    was written; its parent is one the dead daemon's orphans go to; no
    record names it (`taken`) and no earlier intent took it; and it holds
    the instance's own log pipe, or else shows the intended command line
    (as exec'd, or as the kernel shows a `#!` script: interpreter, script
    path, arguments) with no other pipe where the instance's would be. The
    pipe is preferred: a fork of another instance's process that has not
    exec'd yet shows that process's command line too, but its pipe is not
    ours. Oldest intent first, each the earliest such process.
    """
    ticks = [intent[3] for intent in intents if type(intent[3]) is int]
    oldest = min(ticks) if ticks else 0
    candidates = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in taken:
            continue
        fields = _stat_fields(int(name))
        if (fields is None or fields[0] == b"Z" or int(fields[19]) < oldest
                or int(fields[1]) not in parents):
            continue
        candidates.append((int(fields[19]), int(name)))
    candidates.sort()
    found = {}
    used = set()
    for _kind, _service, _instance, ticks, identity, seq in intents:
        if type(ticks) is not int or type(identity) is not dict:
            continue
        pipes = [p for p in identity.get("pipes") or () if type(p) is dict]
        mine = [(start, pid) for start, pid in candidates if start >= ticks and pid not in used]
        hit = next((c for c in mine if any(_holds_pipe(c[1], p) == "ours" for p in pipes)), None)
        if hit is None:
            hit = next((c for c in mine if _shows_command(c[1], identity)
                        and not any(_holds_pipe(c[1], p) == "other" for p in pipes)), None)
        if hit is not None:
            found[seq] = (hit[1], hit[0])
            used.add(hit[1])
    return found


def _shows_command(pid, identity):
    try:
        argv = [os.fsencode(a) for a in identity["argv"]]
        path = os.fsencode(identity["path"])
    except (KeyError, TypeError, ValueError):
        return False
    shown = _cmdline(pid)
    if not shown or not argv:
        return False
    script = [path] + argv[1:]  # execve of a `#!` file: interpreter [arg] path args
    return shown == argv or (len(shown) > len(script) and shown[-len(script):] == script)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[:-1].split(b"\0") if data.endswith(b"\0") else data.split(b"\0")


def _holds_pipe(pid, pipe):
    """"ours" if pid's fd (the pipe's child_fd) is that pipe, "other" if it is
    another pipe, None if neither (no such fd, not a pipe, unreadable)."""
    import stat

    try:
        st = os.stat(f"/proc/{pid}/fd/{int(pipe['child_fd'])}")
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if not stat.S_ISFIFO(st.st_mode):
        return None
    return "ours" if st.st_ino == pipe.get("ino") else "other"


def _pipes_of(identity, pid):
    """An intent's log pipes, described as describe_for_file() does."""
    from pyprocd.process.logsink import instance_ident

    ident = instance_ident(str(identity.get("log_as") or ""), pid)
    return [{"child_fd": p.get("child_fd"), "ino": p.get("ino"), "ident": ident,
             "priority": p.get("priority")}
            for p in identity.get("pipes") or () if type(p) is dict]


def _recorded_pids(manager_state, records):
    pids = {record[3] for record in records if record[0] == "spawn"}
    for svc in manager_state.get("services") or ():
        if type(svc) is dict:
            for entry in list(svc.get("instances") or ()) + list(svc.get("stopping") or ()):
                if type(entry) is dict:
                    pids.add(entry.get("pid"))
    return pids
