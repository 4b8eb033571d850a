"""`service list` with verbose shows the service's triggers as procd does, an empty array too.

procd keeps the `triggers` blob a `set` carried and prints it whenever
verbose is asked, so every procd.sh service (which always sends
"triggers": [ ]) shows `"triggers": [ ]` in `/etc/init.d/x info`; a service
set without the key shows none.
"""

import pytest

from tests.e2e.stack import Stack


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path).start()
    yield s
    s.close()


def test_empty_triggers_are_listed_when_verbose(stack):
    assert stack.call("set", {"name": "t1", "instances": {}, "triggers": []})[0] == 0
    status, reply = stack.call("list", {"name": "t1", "verbose": True})
    assert status == 0
    assert reply["t1"]["triggers"] == []
    assert "triggers" not in stack.call("list", {"name": "t1"})[1]["t1"]


def test_a_service_set_without_triggers_lists_none(stack):
    assert stack.call("set", {"name": "t2", "instances": {}})[0] == 0
    assert "triggers" not in stack.call("list", {"name": "t2", "verbose": True})[1]["t2"]
