"""Replays ../shared/vectors/procd-behaviour.json cases against a `call` function.

Shared by the in-process replay (tests/core) and the end-to-end replay over
the bus (tests/e2e): give it `call(method, request) -> (status, reply)` and
`pump(seconds)` that lets the supervisor work for a while.

Recorded sleeps are not replayed as fixed sleeps: a read-only call (list,
get_data, validate) after a sleep is retried until it matches or a generous
deadline passes, so a loaded machine makes the test slower, never flaky.
"""

import copy
import json
import os
import re
import time

READ_ONLY = {"list", "get_data", "validate"}
PID_RE = re.compile(r"<PID(\d+)>\Z")
RETRY_DEADLINE = 30.0


class Placeholders:
    """<PIDn> in recorded data: the same n is the same pid, a new n a new pid."""

    def __init__(self, work):
        self.work = work
        self.pids = {}

    def expand(self, value):
        """Replace <WORK> (requests and paths); pids stay symbolic."""
        if isinstance(value, str):
            return value.replace("<WORK>", self.work)
        if isinstance(value, list):
            return [self.expand(v) for v in value]
        if isinstance(value, dict):
            return {k: self.expand(v) for k, v in value.items()}
        return value

    def match(self, expected, actual):
        """True if actual matches expected; pid bindings are kept only on success."""
        trial = dict(self.pids)
        if _match(self.expand(expected), actual, trial):
            self.pids = trial
            return True
        return False

    def pid(self, placeholder):
        m = PID_RE.match(placeholder)
        return self.pids[m.group(1)]


def _match(expected, actual, pids):
    if isinstance(expected, str):
        m = PID_RE.match(expected)
        if m:
            if type(actual) is not int or actual <= 0:
                return False
            n = m.group(1)
            if n in pids:
                return pids[n] == actual
            if actual in pids.values():
                return False  # a new placeholder must be a new process
            pids[n] = actual
            return True
        if "<PID" in expected and isinstance(actual, str):
            return _match_text_with_pids(expected, actual, pids)
        return expected == actual
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or list(expected) != list(actual):
            return False  # key order is part of procd's output
        return all(_match(expected[k], actual[k], pids) for k in expected)
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(expected) != len(actual):
            return False
        return all(_match(e, a, pids) for e, a in zip(expected, actual))
    if type(expected) is not type(actual):
        return False
    return expected == actual


def _match_text_with_pids(expected, actual, pids):
    parts = re.split(r"(<PID\d+>)", expected)
    pattern = "".join(r"(\d+)" if PID_RE.match(p) else re.escape(p) for p in parts)
    m = re.fullmatch(pattern, actual)
    if not m:
        return False
    groups = iter(m.groups())
    return all(_match(p, int(next(groups)), pids) for p in parts if PID_RE.match(p))


def proc_probe(pid, base_env):
    """What the recorder read from /proc/<pid>, read the same way."""
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = [e for e in f.read().split(b"\0") if e]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = [a.decode() for a in f.read().split(b"\0")[:-1]]
    limits = {}
    with open(f"/proc/{pid}/limits") as f:
        for line in f.readlines()[1:]:
            name, soft, hard = line[:26].strip(), line[26:47].strip(), line[47:68].strip()
            limits[name] = [soft, hard]
    base = {k + b"=" + v for k, v in base_env.items()}
    return {
        "uid_real_effective": [int(x) for x in status["Uid"].split()[:2]],
        "gid_real_effective": [int(x) for x in status["Gid"].split()[:2]],
        "nice": int(fields[16]),
        "SigIgn": status["SigIgn"],
        "environ_minus_procd_environ": sorted(e.decode() for e in environ if e not in base),
        "procd_environ_entries_missing_in_instance": len(base - set(environ)),
        "limits": limits,
        "cmdline": cmdline,
    }


SIGPIPE_BIT = 1 << (13 - 1)


def check_probe(step, probe):
    """Compare a probe; SigIgn differs on purpose in the SIGPIPE bit only."""
    for key in ("uid_real_effective", "gid_real_effective", "nice", "cmdline",
                "environ_minus_procd_environ", "procd_environ_entries_missing_in_instance"):
        assert probe[key] == step[key], (key, probe[key], step[key])
    for name, soft_hard in step.get("limits_soft_hard", {}).items():
        assert probe["limits"][name] == soft_hard, (name, probe["limits"][name])
    recorded = int(step["SigIgn"], 16)
    ours = int(probe["SigIgn"], 16)
    # pyprocd resets SIGPIPE to default for its children (procd quirk 4 fixed).
    assert ours & SIGPIPE_BIT == 0
    hup = 1 << 0
    assert ours & hup == recorded & hup  # inherited from the launcher, as with procd


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def replay_case(case, call, pump, work, base_env, patches=None):
    """Run one case; patches maps step index -> function(expected_reply) -> reply."""
    ph = Placeholders(work)
    after_sleep = False
    for index, step in enumerate(case["steps"]):
        op = step["op"]
        where = f"{case['name']} step {index} ({op} {step.get('method', '')})"
        if op == "sleep":
            after_sleep = True
            continue
        if op == "call":
            expected = copy.deepcopy(step["reply"])
            if patches and index in patches:
                expected = patches[index](expected)
            request = ph.expand(step["request"])
            deadline = time.monotonic() + (RETRY_DEADLINE if after_sleep else 0)
            while True:
                status, reply = call(step["method"], request)
                if status == step["status"] and ph.match(expected, reply):
                    break
                if step["method"] not in READ_ONLY or time.monotonic() > deadline:
                    raise AssertionError(
                        f"{where}: got status {status} reply {json.dumps(reply)}; "
                        f"want {step['status']} {json.dumps(expected)}"
                    )
                pump(0.05)
        elif op == "probe":
            if patches and index in patches:
                patches[index](step)
                continue
            pid = ph.pid(step["pid"])
            # The pid exists from fork on; wait until the child has exec'd.
            deadline = time.monotonic() + RETRY_DEADLINE
            while proc_probe(pid, base_env)["cmdline"] != step["cmdline"]:
                assert time.monotonic() < deadline, f"{where}: never exec'd"
                pump(0.02)
            check_probe(step, proc_probe(pid, base_env))
        elif op == "read_file":
            path = ph.expand(step["path"])
            deadline = time.monotonic() + (RETRY_DEADLINE if after_sleep else 0)
            while os.path.exists(path) != step["exists"] and time.monotonic() < deadline:
                pump(0.05)
            assert os.path.exists(path) == step["exists"], where
            if step["exists"]:
                with open(path) as f:
                    assert ph.match(step["content"], f.read()), where
        elif op == "check_pid_alive":
            pid = ph.pid(step["pid"])
            deadline = time.monotonic() + RETRY_DEADLINE
            while pid_alive(pid) != step["alive"] and time.monotonic() < deadline:
                pump(0.05)
            assert pid_alive(pid) == step["alive"], where
        else:
            raise AssertionError(f"{where}: unknown op")
        after_sleep = False
    return ph
