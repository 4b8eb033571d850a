"""Double-forking services under pyprocd as subreaper (user-asks #3):
orphans are reaped, no zombie is left, group kill takes grandchildren down, and a
daemonising service's new pid is found from its pidfile."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reaping")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, os.path.join(HERE, "scenario_reaping.py"), str(tmp)],
                          capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_orphaned_grandchild_is_adopted_by_the_subreaper(report):
    assert report["group_kill"]["adopted"] is True
    assert report["no_group_kill"]["adopted"] is True


def test_group_kill_stops_the_grandchild_too(report):
    assert report["group_kill"]["after_stop"] == "gone"


def test_without_group_kill_the_grandchild_survives_stop(report):
    # procd's default, kept: only the main pid is signalled
    assert report["no_group_kill"]["after_stop"] not in ("gone", "Z")


def test_every_orphan_is_reaped_and_no_zombie_remains(report):
    grandchildren = {report["group_kill"]["grandchild"], report["no_group_kill"]["grandchild"],
                     report["daemonize"]["new"]}
    assert grandchildren <= set(report["orphans_reaped"])
    assert report["group_kill"]["final"] == "gone"
    assert report["no_group_kill"]["final"] == "gone"
    assert report["daemonize"]["final"] == "gone"
    assert report["children_left"] == []


def test_pidfile_names_the_daemonised_pid(report):
    daemon = report["daemonize"]
    assert daemon["main_exit"] == 0
    assert daemon["new"] not in (None, daemon["main"])
    assert daemon["stale"] is None
