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


def service_list(name=None, verbose=False, poll=False):
    """`service list`; the CLI unless poll (a wait loop: one in-process
    connection, as a python start costs seconds on an emulated MIPS)."""
    global _bus
    args = {}
    if name:
        args["name"] = name
    if verbose:
        args["verbose"] = True
    if not poll:
        return ubus("list", args)
    if _bus is None:
        from pyprocd.bus.client import BlockingUbus

        _bus = BlockingUbus("/var/run/ubus/ubus.sock", timeout=60)
    status, replies = _bus.call("service", "list", args)
    if status != 0:
        raise UbusError(f"service list {args}: status {status}")
    return replies[0] if replies else {}


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
    pss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def syslog_lines():
    try:
        with open("/var/log/messages", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def finish():
    """End of a scenario: exit 0 (the host counts the FAIL lines)."""
    note(f"done, {failures} failed")
    sys.exit(0)
