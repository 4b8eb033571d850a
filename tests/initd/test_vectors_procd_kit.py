"""Every procd case of initd-kit.json, the kit alone: each ubus call gets procd's recorded reply.

The kit (rc.common, procd.sh, functions.sh, jshn) runs the recorded steps in
a view like the recorder's; the ubus command there records what the kit
sends and answers each call with the reply the real procd gave at that
point. So every byte the kit produces is compared with what OpenWrt's own
kit produced from the same replies: the ubus calls (argv, the JSON text as
sent), exit codes, stdout, stderr and the /etc/rc.d links, step by step.
The same cases against pyprocd's daemon are test_vectors_procd_live.py.
"""

import os

import pytest

from tests.initd import kitview

VECTORS = kitview.load_vectors() if os.path.exists(kitview.VECTORS) else None
pytestmark = pytest.mark.skipif(VECTORS is None, reason="initd-kit.json not present")
CASES = (VECTORS or {}).get("procd_cases", [])


def calls(step):
    return [(c["argv"], c.get("rc"), c.get("stdout"), c.get("stderr")) for c in step["ubus"]]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kit_replays_identically(kit_layer, case):
    got = kitview.run_case(kit_layer, "procd", case, mode="recorded")["steps"]
    assert len(got) == len(case["steps"])
    for n, (want, step) in enumerate(zip(case["steps"], got)):
        if want["kind"] != "initd":
            continue
        where = f"step {n} {want['argv']}"
        assert calls(step) == calls(want), where
        assert (step["rc"], step["stdout"], step["stderr"]) == \
            (want["rc"], want["stdout"], want["stderr"]), where
        if "rc_d" in want:
            assert step["rc_d"] == want["rc_d"], where
