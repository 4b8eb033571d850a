"""Paths the root daemon opens for instances: pidfiles written without following what a
service planted, FIFOs and devices never block the daemon or fill its memory, and the
`file` key digested incrementally (MD5, as procd) without hashlib."""

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest

from tests.conftest import ROOT, needs_root
from tests.core.harness import Supervisor
from tests.e2e.stack import Stack

DEADLINE = 30


@pytest.fixture
def sup(tmp_path):
    s = Supervisor(tmp_path)
    yield s
    s.close()


@contextlib.contextmanager
def fifo(path, rescue_after=20):
    """A FIFO at path, and a helper that unblocks whoever sits in open() on it for too
    long (so a regression fails instead of hanging the suite). Yields the list of
    rescues: it must stay empty."""
    os.mkfifo(path)
    done = threading.Event()
    rescued = []

    def rescue():
        while not done.wait(0.2 if rescued else rescue_after):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # nobody is blocked in open(): nothing to do
            rescued.append(True)
            os.close(fd)

    helper = threading.Thread(target=rescue, daemon=True)
    helper.start()
    try:
        yield rescued
    finally:
        done.set()
        helper.join()


def errors_of(sup, service):
    status, reply = sup.call("list", {"name": service})
    assert status == 0
    return reply[service]["instances"]["i"].get("errors", [])


# -- pidfiles (a service running as another user may control their directory) ------------

def test_pidfile_temp_name_is_not_predictable_nor_followed(sup, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    victim.chmod(0o600)
    run = tmp_path / "run"
    run.mkdir()
    pidfile = run / "svc.pid"
    # what the former fixed temp name would be, pointing at root's file
    (run / f"svc.pid.{os.getpid()}.tmp").symlink_to(victim)
    sup.call("set", {"name": "p", "instances": {"i": {
        "command": ["/bin/sleep", "1000"], "pidfile": str(pidfile)}}})
    inst = sup.inst("p", "i")
    assert inst.running
    assert victim.read_text() == "secret\n"
    assert pidfile.read_text() == f"{inst.pid}\n" and not pidfile.is_symlink()


def test_pidfile_planted_as_symlink_is_replaced_not_written_through(sup, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    pidfile = tmp_path / "svc.pid"
    pidfile.symlink_to(victim)
    sup.call("set", {"name": "p", "instances": {"i": {
        "command": ["/bin/sleep", "1000"], "pidfile": str(pidfile)}}})
    inst = sup.inst("p", "i")
    assert victim.read_text() == "secret\n"
    assert not pidfile.is_symlink() and pidfile.read_text() == f"{inst.pid}\n"
    sup.call("delete", {"name": "p"})
    assert sup.wait(lambda: not sup.mgr.services)
    assert not pidfile.exists() and victim.read_text() == "secret\n"


@needs_root
def test_pidfile_in_a_directory_the_services_user_owns(sup, tmp_path):
    """The reported case: a `nobody` service whose pidfile directory is its own plants
    symlinks to a root:root 0600 file at every name root might write."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    victim.chmod(0o600)
    run = tmp_path / "run"
    run.mkdir()
    os.chown(run, nobody.pw_uid, nobody.pw_gid)
    pidfile = run / "svc.pid"
    for name in ("svc.pid", f"svc.pid.{os.getpid()}.tmp", "svc.pid.tmp"):
        (run / name).symlink_to(victim)
    sup.call("set", {"name": "p", "instances": {"i": {
        "command": ["/bin/sleep", "1000"], "user": "nobody", "pidfile": str(pidfile)}}})
    inst = sup.inst("p", "i")
    assert inst.running
    assert victim.read_text() == "secret\n" and victim.stat().st_mode & 0o777 == 0o600
    assert not pidfile.is_symlink() and pidfile.read_text() == f"{inst.pid}\n"
    assert pidfile.stat().st_uid == 0


def test_pidfile_directory_swapped_for_a_symlink_is_refused(sup, tmp_path):
    # A directory other users can write: the service's user swaps its pidfile
    # directory for a symlink to a directory of root's.
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o1777)
    roots = tmp_path / "roots"
    roots.mkdir()
    (public / "svc").symlink_to(roots)
    sup.call("set", {"name": "p", "instances": {"i": {
        "command": ["/bin/sleep", "1000"], "pidfile": str(public / "svc" / "svc.pid")}}})
    assert sup.inst("p", "i").running  # a pidfile that cannot be written is a warning
    assert list(roots.iterdir()) == []
    assert any("pidfile" in line and "symlink" in line for line in sup.log.lines)


# -- FIFOs and devices never block the daemon -----------------------------------------------

@pytest.mark.parametrize("key", ["capabilities", "seccomp"])
def test_hardening_file_that_is_a_fifo_is_an_instance_error(sup, tmp_path, key):
    with fifo(tmp_path / "f") as rescued:
        status, _ = sup.call("set", {"name": "h", "instances": {"i": {
            "command": ["/bin/sleep", "1000"], key: str(tmp_path / "f")}}})
    assert rescued == []
    assert status == 0 and not sup.inst("h", "i").running
    assert any("not a regular file" in e for e in errors_of(sup, "h"))


def test_pidfile_replaced_by_a_fifo_does_not_block_following(sup, tmp_path):
    from pyprocd.process import shim
    try:
        shim.set_child_subreaper(True)
    except OSError as e:
        pytest.skip(f"cannot become a subreaper here: {e}")
    sup.spawner.subreaper = True
    pidfile = tmp_path / "d.pid"
    try:
        with fifo(tmp_path / "fifo") as rescued:
            script = f"rm -f {pidfile}; ln {tmp_path / 'fifo'} {pidfile}; exit 0"
            sup.call("set", {"name": "d", "instances": {"i": {
                "command": ["/bin/sh", "-c", script], "pidfile": str(pidfile)}}})
            inst = sup.inst("d", "i")
            assert sup.wait(lambda: not inst.running and inst.exits, DEADLINE)
        assert rescued == []
    finally:
        shim.set_child_subreaper(False)


def test_file_key_fifo_is_refused_by_the_daemon(tmp_path):
    stack = Stack(tmp_path).start()
    try:
        with fifo(tmp_path / "f") as rescued:
            status, _ = stack.call("set", {"name": "f", "instances": {"i": {
                "command": ["/bin/sleep", "1000"], "file": [str(tmp_path / "f")]}}})
        assert rescued == []
        assert status == 0
        listed = stack.call("list", {"name": "f"})[1]["f"]["instances"]["i"]
        assert listed["running"] is False
        assert any("not a regular file" in e for e in listed.get("errors", [])), listed
    finally:
        stack.close()


# -- the `file` key's digest ----------------------------------------------------------------

def test_file_digest_is_procds_md5_of_the_content(tmp_path):
    from pyprocd.process.files import ZERO_DIGEST, file_digest

    path = tmp_path / "conf"
    data = os.urandom(300_000)
    path.write_bytes(data)
    assert file_digest(str(path)) == hashlib.md5(data).hexdigest()
    assert file_digest(str(tmp_path / "missing")) == ZERO_DIGEST


@pytest.mark.parametrize("target", ["/dev/zero", "big", "dir"])
def test_file_digest_refuses_devices_directories_and_files_over_the_cap(tmp_path, target):
    from pyprocd.process import files

    path = {"big": tmp_path / "big", "dir": tmp_path}.get(target, target)
    if target == "big":
        with open(path, "wb") as f:
            f.truncate(1 << 20)
    with pytest.raises(files.UnsafePath):
        files.file_digest(str(path), limit=(1 << 20) - 1)


def test_file_digest_leaves_hashlib_out_of_the_process(tmp_path):
    path = tmp_path / "conf"
    path.write_text("x\n")
    code = ("import sys; from pyprocd.process.files import file_digest; "
            f"d = file_digest({str(path)!r}); "
            "import json; print(json.dumps([d, 'hashlib' in sys.modules, '_hashlib' in sys.modules]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    digest, has_hashlib, has_openssl = json.loads(out)
    assert digest == hashlib.md5(b"x\n").hexdigest()
    assert not has_hashlib and not has_openssl


def test_file_key_over_the_cap_is_an_instance_error_in_the_daemon(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate((64 << 20) + 1)   # sparse: no disk, no memory
    stack = Stack(tmp_path).start()
    try:
        status, _ = stack.call("set", {"name": "f", "instances": {"i": {
            "command": ["/bin/sleep", "1000"], "file": [str(big)]}}})
        assert status == 0
        listed = stack.call("list", {"name": "f"})[1]["f"]["instances"]["i"]
        assert listed["running"] is False
        assert any("larger than" in e for e in listed.get("errors", [])), listed
    finally:
        stack.close()
