"""The state file is JSON written without the json package (memory); it must read back exactly."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyprocd.daemon.state import decode, encode, encode_record

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(values)
def test_encode_is_json(value):
    assert json.loads(encode(value)) == value


@settings(max_examples=200, deadline=None)
@given(values)
def test_journal_lines_are_written_as_the_state_is(value):
    # The journal's faster encoder must write exactly what encode() writes.
    assert encode_record(value) == encode(value)


def test_decode_round_trip_and_rejects_garbage():
    from pyprocd.daemon.state import STATE_FORMAT
    state = {"format": STATE_FORMAT, "services": [{"name": "x\n\u00e9"}]}
    assert decode(encode(state)) == (state, None)
    bad, reason = decode(b"{not json")
    assert bad is None and "unreadable" in reason


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1: "x"}, object()])
def test_unstorable_values_raise(value):
    with pytest.raises((ValueError, TypeError)):
        encode(value)


def test_daemon_does_not_import_json_or_re():
    import subprocess
    import sys
    code = ("import sys; import pyprocd.daemon.main as m; "
            "o = m.parse_args(['-s', '/nonexistent', '--confdir', '/nonexistent']); m.build_daemon(o); "
            "import pyprocd.daemon.survival; print(sorted({'json', 're', 'argparse'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=False)  # a failure shows its stderr in the assertion below
    assert out.stdout.strip() == "[]", out.stderr


def test_encoding_a_big_state_needs_little_more_memory_than_its_output():
    """The daemon writes its state after every burst; a burst's write must not
    leave the daemon's heap grown by many times the file (the memory Python
    touched stays with the process)."""
    import tracemalloc

    instance = {"pid": 12345, "start_ticks": 987654321, "respawn_count": 0, "state": "running",
                "exits": [], "watchdog": [0, 30, False], "spawn_error": None, "halt": False,
                "command": ["/usr/sbin/daemon", "-f", "--config", "/etc/daemon.conf"]}
    state = {"format": 2, "services": {f"s{k}": {"instances": {f"i{j}": dict(instance)
                                                                for j in range(10)}}
                                       for k in range(30)}}
    tracemalloc.start()
    try:
        out = encode(state)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = encode(state)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak <= 3 * len(out), (peak, len(out))
