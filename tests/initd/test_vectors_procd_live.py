"""Every procd case of initd-kit.json against the kit and pyprocd's own bus and daemon.

Each case runs in a view like the recorder's with a fresh `pyprocd bus` and
daemon on /var/run/ubus/ubus.sock; after every step the run settles as the
recorder's did. For every step:

* the ubus calls the kit makes are identical to the recording: the same
  calls in the same order, argv byte for byte (the JSON text as sent), and
  the same exit code of each call;
* the /etc/rc.d links are identical;
* exit code, stdout and stderr of the step and every call's output are
  identical, once pyprocd's addition to a verbose `list` (the `exits`
  history) is taken out, except in the steps listed in DAEMON_DEVIATIONS:
  there the daemon answers differently from procd on purpose (README,
  "Compatibility"), or keeps a difference noted with its reason, and what
  the kit prints follows from that answer. What the kit itself does with
  procd's exact answers is test_vectors_procd_kit.py.
"""

import os
import re

import pytest

from tests.initd import kitview

VECTORS = kitview.load_vectors() if os.path.exists(kitview.VECTORS) else None
pytestmark = pytest.mark.skipif(VECTORS is None, reason="initd-kit.json not present")
CASES = (VECTORS or {}).get("procd_cases", [])

REASONS = {
    "invalid-listed": "an invalid instance (nice out of range, requirejail without ujail) is "
                      "listed with `errors`; procd leaves it out of `list`",
    "unknown-user": "an unknown user is an instance error, the instance never starts; procd "
                    "runs it as root",
    "sandbox-files": "a seccomp/capabilities file that cannot be read fails the instance; the "
                     "recorded procd (built without seccomp support) ignores the keys",
    "trace-seccomp": "a traced instance still lists its seccomp path; procd leaves it out "
                     "when trace is set",
    "error-order": "`errors` keeps the order the script gave; procd lists them reversed",
    "netdev-dupes": "a device named twice in `netdev` is listed twice; procd lists it once",
    "validate-order": "`validate` rules are listed in the order given; procd sorts them",
    "respawn-defaults": "respawn values a script leaves out come from the daemon's UCI "
                        "(system.@service[0]); procd fills in 5 and 5",
}

# case -> {step index: the reasons its answers differ}
SCALARS = ("invalid-listed", "unknown-user", "sandbox-files", "error-order")
DAEMON_DEVIATIONS = {
    "kit_arrays": dict.fromkeys((1, 2, 6), ("netdev-dupes",)),
    "kit_scalars": dict.fromkeys(range(1, 9), SCALARS),
    "kit_respawn": dict.fromkeys((1, 4, 7, 8), ("respawn-defaults",)),
    "kit_validate": dict.fromkeys((2, 6), ("validate-order",)),
    "kit_validate_raw": {1: ("validate-order",)},
    "kit_jail": dict.fromkeys((1, 2, 3, 4, 7), ("invalid-listed", "sandbox-files")),
    "kit_trace": {1: ("trace-seccomp",), 5: ("trace-seccomp",),
                  **dict.fromkeys((3, 8, 9), ("sandbox-files", "trace-seccomp"))},
}

# pyprocd's `exits` history in a verbose list, as the ubus CLI prints it
EXITS = re.compile(r',\n(\t+)"exits": \[\n.*?\n\1\]', re.DOTALL)


def without_exits(text):
    return EXITS.sub("", text or "")


def test_every_deviation_has_a_reason():
    used = {r for steps in DAEMON_DEVIATIONS.values() for rs in steps.values() for r in rs}
    assert used <= set(REASONS)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case_against_the_daemon(kit_layer, case):
    got = kitview.run_case(kit_layer, "procd", case)["steps"]
    deviations = DAEMON_DEVIATIONS.get(case["name"], {})
    assert len(got) == len(case["steps"])
    for n, (want, step) in enumerate(zip(case["steps"], got)):
        if want["kind"] != "initd":
            continue
        where = f"step {n} {want['argv']}"
        assert step["settled"], f"{where}: the daemon did not settle"
        assert [(c["argv"], c["rc"]) for c in step["ubus"]] == \
            [(c["argv"], c.get("rc")) for c in want["ubus"]], where
        if "rc_d" in want:
            assert step["rc_d"] == want["rc_d"], where
        if n in deviations:
            continue
        assert [(without_exits(c["stdout"]), c["stderr"]) for c in step["ubus"]] == \
            [(c.get("stdout"), c.get("stderr")) for c in want["ubus"]], where
        assert (step["rc"], without_exits(step["stdout"]), step["stderr"]) == \
            (want["rc"], want["stdout"], want["stderr"]), where
