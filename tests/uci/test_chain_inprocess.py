"""The UCI -> reload-config -> config.change -> re-submit chain, in one process.

Real children, real files, the real uci CLI code and the real core; only the
bus between `reload-config` and the core is replaced by a direct call (the
end-to-end variant over a socket is in test_chain_e2e.py).
"""

import io

import pytest

from pyprocd.daemon.settings import attach
from pyprocd.uci import cli
from pyprocd.uci.reload import reload_config
from tests.core.harness import Supervisor

DEADLINE = 60

CONFIG = """
config pyprocd 'main'

config service 'alpha'
\toption command '/bin/sleep 1001'

config service 'beta'

config instance 'b1'
\toption service 'beta'
\tlist command '/bin/sleep'
\tlist command '1002'

config instance 'b2'
\toption service 'beta'
\tlist command '/bin/sleep'
\tlist command '1003'
"""


@pytest.fixture
def chain(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "pyprocd").write_text(CONFIG)
    sup = Supervisor(tmp_path)
    declared = attach(sup.loop, sup.mgr, str(conf), log=sup.log, savedir=str(tmp_path / "tmp-uci"))
    yield sup, conf, tmp_path, declared
    sup.close()


def uci(conf, tmp_path, *args):
    out, err = io.BytesIO(), io.BytesIO()
    code = cli.main(["-c", str(conf), "-t", str(tmp_path / "save")] + list(args), stdout=out,
                    stderr=err, default_savedir=str(tmp_path / "tmp-uci"), default_conf2dir="")
    assert code == 0, err.getvalue()


def pids(sup):
    return {(s, i): inst.pid for s, svc in sup.mgr.services.items()
            for i, inst in svc.instances.items() if inst.pid}


def running(sup, count):
    return lambda: len(pids(sup)) == count


def reload(sup, conf, tmp_path):
    def send(type_, data):
        status, _ = sup.call("event", {"type": type_, "data": data})
        assert status == 0

    return reload_config(str(conf), str(tmp_path / "config.md5"), send,
                         savedir=str(tmp_path / "tmp-uci"))


def test_declared_services_start_and_only_the_changed_instance_restarts(chain):
    sup, conf, tmp_path, _ = chain
    assert sup.wait(running(sup, 3), DEADLINE)
    before = pids(sup)
    assert reload(sup, conf, tmp_path) == []  # first run: checksums only
    uci(conf, tmp_path, "set", "pyprocd.b2.command=/bin/sleep 1004")
    uci(conf, tmp_path, "commit", "pyprocd")
    assert reload(sup, conf, tmp_path) == ["pyprocd"]
    b2 = ("beta", "b2")
    assert sup.wait(lambda: pids(sup).get(b2) not in (None, before[b2]), DEADLINE)
    after = pids(sup)
    assert {k: v for k, v in after.items() if k != b2} == {k: v for k, v in before.items() if k != b2}
    assert sup.inst("beta", "b2").spec.command == ("/bin/sleep", "1004")


def test_malformed_config_keeps_everything_running(chain):
    sup, conf, tmp_path, _declared = chain
    assert sup.wait(running(sup, 3), DEADLINE)
    before = pids(sup)
    reload(sup, conf, tmp_path)
    (conf / "pyprocd").write_text(CONFIG + "\tbogus line\n")
    assert reload(sup, conf, tmp_path) == ["pyprocd"]
    assert sup.wait(lambda: any("Parse error (invalid command) at line 18, byte 1" in line
                                for line in sup.log.lines), DEADLINE)
    assert pids(sup) == before
    assert all(sup.inst(s, i).running for s, i in before)


def test_removed_service_is_deleted_and_others_untouched(chain):
    sup, conf, tmp_path, _ = chain
    assert sup.wait(running(sup, 3), DEADLINE)
    before = pids(sup)
    reload(sup, conf, tmp_path)
    uci(conf, tmp_path, "delete", "pyprocd.alpha")
    uci(conf, tmp_path, "commit")
    reload(sup, conf, tmp_path)
    assert sup.wait(lambda: "alpha" not in sup.mgr.services, DEADLINE)
    assert pids(sup) == {k: v for k, v in before.items() if k[0] != "alpha"}


def test_other_packages_do_not_resubmit(chain):
    sup, _conf, _tmp_path, declared = chain
    assert sup.wait(running(sup, 3), DEADLINE)
    calls = []
    original = declared.apply
    declared.apply = lambda: calls.append(1) or original()
    sup.call("event", {"type": "config.change", "data": {"package": "network"}})
    sup.call("event", {"type": "config.change", "data": {"package": "pyprocd"}})
    sup.call("event", {"type": "config.change", "data": {"package": "pyprocd"}})
    assert sup.wait(lambda: calls, DEADLINE)
    sup.pump(0.1)
    assert calls == [1]  # two events in one loop turn: one re-read


def test_instance_lifecycle_events_fire_triggers(chain, tmp_path):
    sup, _conf, _, _ = chain
    out = tmp_path / "events"
    script = tmp_path / "record.sh"
    script.write_text(f'#!/bin/sh\necho "$1 $2" >> "{out}"\n')
    script.chmod(0o755)
    status, _ = sup.call("set", {
        "name": "watched",
        "instances": {"main": {"command": ["/bin/sh", "-c", "exit 3"]}},
        "triggers": [
            ["instance.start", ["if", ["eq", "service", "watched"],
                                ["run_script", str(script), "start", "%instance%"]]],
            ["instance.stop", ["if", ["eq", "service", "watched"],
                               ["run_script", str(script), "stop", "%instance%"]]],
        ],
    })
    assert status == 0
    assert sup.wait(lambda: out.exists() and len(out.read_text().split("\n")) >= 3, DEADLINE)
    assert sup.wait(lambda: sup.mgr.triggers.idle(), DEADLINE)
    assert out.read_text() == "start main\nstop main\n"


def test_trigger_scripts_get_the_daemons_original_environment(chain, tmp_path):
    sup, _, _, _ = chain
    out = tmp_path / "env"
    script = tmp_path / "env.sh"
    script.write_text(f'#!/bin/sh\necho "${{PYPROCD_TEST_MARK:-unset}}" > "{out}"\n')
    script.chmod(0o755)
    sup.mgr.spawner.base_env[b"PYPROCD_TEST_MARK"] = b"original"
    sup.mgr.triggers.set_triggers("x", None, [["go", ["run_script", str(script)]]])
    sup.call("event", {"type": "go", "data": {}})
    assert sup.wait(lambda: out.exists() and sup.mgr.triggers.idle(), DEADLINE)
    assert out.read_text() == "original\n"


def test_daemon_start_with_a_broken_config_runs_nothing_and_logs(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "pyprocd").write_text("config service 'x'\n\toption command '/bin/sleep 1'\n\toption\n")
    sup = Supervisor(tmp_path)
    try:
        declared = attach(sup.loop, sup.mgr, str(conf), log=sup.log,
                          savedir=str(tmp_path / "tmp-uci"))
        assert sup.wait(lambda: any("Parse error (invalid command) at line 3, byte 1"
                                    in line for line in sup.log.lines), DEADLINE)
        assert sup.mgr.services == {} and declared.submitted == {}
        # fixed and announced: the services come up
        (conf / "pyprocd").write_text("config service 'x'\n\toption command '/bin/sleep 1005'\n")
        sup.call("event", {"type": "config.change", "data": {"package": "pyprocd"}})
        assert sup.wait(running(sup, 1), DEADLINE)
    finally:
        sup.close()
