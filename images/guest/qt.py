"""Guest-side helpers for the scenarios: assertions, figures, ubus, /proc.

Every assertion prints one console line the host counts:
    @@QT PASS <scenario>/<check>
    @@QT FAIL <scenario>/<check>: <what was seen>
Figures (measured, never asserted): @@QT FIGURE <name> <value> <unit>.

Negative control: the kernel command line knob qt.invert=<scenario>/<check>
inverts that one assertion (the host sets it from QEMU_TEST_INVERT), so a
run proves it would notice that check failing.
"""

import json
import os
import subprocess
import sys
import time

# "01-instance.py" -> "instance"
SCENARIO = os.path.splitext(os.path.basename(sys.argv[0]))[0].split("-", 1)[-1]


def _cmdline_knob(key):
    with open("/proc/cmdline") as f:
        for word in f.read().split():
            if word.startswith(key + "="):
                return word[len(key) + 1:]
    return None


INVERT = _cmdline_knob("qt.invert")
failures = 0


def check(name, ok, detail=""):
    """Report one assertion; returns whether it passed."""
    global failures
    full = f"{SCENARIO}/{name}"
    ok = bool(ok)
    if INVERT == full:
        ok = not ok
        detail = f"inverted by qt.invert (really {'failed' if ok else 'passed'}) {detail}"
    if ok:
        print(f"@@QT PASS {full}", flush=True)
    else:
        failures += 1
        print(f"@@QT FAIL {full}: {detail}".rstrip(), flush=True)
    return ok


def figure(name, value, unit):
    print(f"@@QT FIGURE {name} {value} {unit}", flush=True)


def note(text):
    print(f"   {SCENARIO}: {text}", flush=True)


class UbusError(Exception):
    pass


def ubus(method, args=None, obj="service"):
    """`pyprocd ubus call <obj> <method> [json]`, the CLI a router's scripts use."""
    argv = ["pyprocd", "ubus", "call", obj, method]
    if args is not None:
        argv.append(json.dumps(args))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise UbusError(f"{' '.join(argv)}: exit {out.returncode} {out.stderr.strip()}")
    return json.loads(out.stdout) if out.stdout.strip() else {}


_bus = None


def bus():
    """The scenario's own bus connection, opened once: a python start costs
    seconds on an emulated MIPS, so wait loops and timed calls use this one
    instead of starting the CLI each time."""
    global _bus
    if _bus is None:
        from pyprocd.bus.client import BlockingUbus

        _bus = BlockingUbus("/var/run/ubus/ubus.sock", timeout=60)
    return _bus


def call(method, args=None, obj="service"):
    """`<obj> <method>` through the scenario's own connection; the first reply."""
    status, replies = bus().call(obj, method, args or {})
    if status != 0:
        raise UbusError(f"{obj} {method} {args}: status {status}")
    return replies[0] if replies else {}


def service_list(name=None, verbose=False, poll=False):
    """`service list`; the CLI unless poll (a wait loop: the scenario's own
    connection)."""
    args = {}
    if name:
        args["name"] = name
    if verbose:
        args["verbose"] = True
    return call("list", args) if poll else ubus("list", args)


def reconnect():
    """Drop the polling connection (the daemon it talked to is gone)."""
    global _bus
    if _bus is not None:
        _bus.close()
        _bus = None


def instances(listing, service):
    return listing.get(service, {}).get("instances", {})


def wait(condition, timeout=120.0, step=0.05):
    """condition()'s first truthy value within timeout, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(step)
        step = min(step * 1.5, 1.0)


# -- /proc -------------------------------------------------------------------------

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return None


def state(pid):
    """The one-letter state of pid (Z: zombie), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(pid):
    return state(pid) not in (None, "Z", "X")


def stat_fields(pid):
    """/proc/PID/stat fields after the command name; [0] is field 3 (state)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def start_time(pid):
    """When pid started, in seconds of /proc/uptime (10 ms resolution)."""
    return int(stat_fields(pid)[19]) / os.sysconf("SC_CLK_TCK")


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


def limits(pid):
    """{'Max open files': ('123', '456'), ...} from /proc/PID/limits."""
    out = {}
    with open(f"/proc/{pid}/limits") as f:
        next(f)
        for line in f:
            name = line[:26].strip()
            soft, hard = line[26:].split()[:2]
            out[name] = (soft, hard)
    return out


def pids_running(argv):
    """Pids whose command line is exactly argv (list of str)."""
    want = [a.encode() for a in argv]
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and cmdline(entry) == want and alive(entry):
            found.append(int(entry))
    return found


def daemon_pid():
    with open("/var/run/pyprocd.pid") as f:
        return int(f.read().split()[0])


def memory_kib(pid):
    """(RSS, PSS) of pid in KiB."""
    rss = int(status(pid)["VmRSS"][0])
    return rss, rollup_kib(pid).get("Pss")


def rollup_kib(pid):
    """/proc/<pid>/smaps_rollup as {field: KiB} ({} if the process is gone)."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    fields[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return fields


def syslog_lines():
    try:
        with open("/var/log/messages", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


class LogTail:
    """The lines syslogd appends to /var/log/messages from now on. Each poll
    reads only the bytes added since the last one (the whole file grows to
    hundreds of KiB during a run); a rotated file (busybox syslogd renames it
    and starts a new one) is finished, then followed from its start."""

    PATH = "/var/log/messages"

    def __init__(self):
        self._fd = None
        self._pending = b""
        try:
            self._fd = os.open(self.PATH, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        os.lseek(self._fd, 0, os.SEEK_END)

    def _read_rest(self):
        chunks = []
        while self._fd is not None:
            chunk = os.read(self._fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def lines(self):
        """The complete lines appended since the last call."""
        data = self._read_rest()
        try:
            inode = os.stat(self.PATH).st_ino
        except OSError:
            inode = None
        if inode is not None and (self._fd is None or os.fstat(self._fd).st_ino != inode):
            data += self._read_rest()
            self.close()
            self._fd = os.open(self.PATH, os.O_RDONLY | os.O_CLOEXEC)
            data += self._read_rest()
        *complete, self._pending = (self._pending + data).split(b"\n")
        return [line.decode(errors="replace") for line in complete]

    def wait_for(self, matches, timeout, step=0.005):
        """The first new line for which matches(line) is true, polled every
        step seconds (fixed and fine: callers time it), or None."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if matches(line):
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(step)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def meminfo_kib(key):
    """A /proc/meminfo figure (e.g. MemAvailable) in KiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0])
    return None


def finish():
    """End of a scenario: exit 0 (the host counts the FAIL lines)."""
    note(f"done, {failures} failed")
    sys.exit(0)
