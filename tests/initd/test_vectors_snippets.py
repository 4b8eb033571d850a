"""Every jshn and functions.sh case of initd-kit.json, replayed byte for byte.

Each case runs in a view like the recorder's (see viewdrive.py): the kit as
`pyprocd kit install` lays it out, /bin/sh = busybox ash, exactly the base
environment plus the case's. rc, stdout, stderr and the files after the run
must be identical to the recording of OpenWrt's own kit.
"""

import os

import pytest

from tests.initd import kitview

VECTORS = kitview.load_vectors() if os.path.exists(kitview.VECTORS) else None
pytestmark = pytest.mark.skipif(VECTORS is None, reason="initd-kit.json not present")
CASES = [(g, c) for g in ("jshn", "functions") for c in (VECTORS or {}).get(g + "_cases", [])]
# case name -> why it differs (each one also has its own test below)
DEVIATIONS = {}


@pytest.mark.parametrize("group,case", CASES, ids=[c["name"] for _g, c in CASES])
def test_case_replays_identically(kit_layer, group, case):
    if case["name"] in DEVIATIONS:
        pytest.skip(f"documented deviation: {DEVIATIONS[case['name']]}")
    got = kitview.run_case(kit_layer, group, case)
    assert (got["rc"], got["stdout"], got["stderr"]) == (case["rc"], case["stdout"], case["stderr"])
    if case.get("after") is not None:
        assert got["after"] == case["after"]
