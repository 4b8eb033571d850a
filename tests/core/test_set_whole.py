"""A `set` applies whole: an instance that cannot be started is an instance
error with a reason, never an exception that leaves the rest of the set undone."""

from tests.core.harness import Supervisor


def _set_with_a_bad_middle(sup, bad):
    instances = {"a": {"command": ["sleep", "100"]}, "b": bad, "c": {"command": ["sleep", "100"]}}
    return sup.call("set", {"name": "svc", "instances": instances})


def _check_whole(sup, status):
    assert status[0] == 0
    insts = sup.mgr.services["svc"].instances
    assert sorted(insts) == ["a", "b", "c"]
    assert insts["a"].running and insts["c"].running
    assert not insts["b"].running and insts["b"].spawn_error


def test_deeply_nested_seccomp_file_is_an_instance_error(tmp_path):
    policy = tmp_path / "deep.json"
    policy.write_text("[" * 100000)
    sup = Supervisor(tmp_path)
    try:
        status = _set_with_a_bad_middle(sup, {"command": ["sleep", "100"], "seccomp": str(policy)})
        _check_whole(sup, status)
    finally:
        sup.close()


def test_wrongly_typed_seccomp_field_is_an_instance_error(tmp_path):
    policy = tmp_path / "arch.json"
    policy.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "architectures": 5, "syscalls": []}')
    sup = Supervisor(tmp_path)
    try:
        status = _set_with_a_bad_middle(sup, {"command": ["sleep", "100"], "seccomp": str(policy)})
        _check_whole(sup, status)
    finally:
        sup.close()


def test_unencodable_command_is_an_instance_error(tmp_path):
    sup = Supervisor(tmp_path)
    try:
        status = _set_with_a_bad_middle(sup, {"command": ["sleep\udcff", "100"]})
        _check_whole(sup, status)
    finally:
        sup.close()
