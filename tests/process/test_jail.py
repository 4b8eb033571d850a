"""The built-in jail, checked from outside with real jailed instances (spec jail.md §13).

The instance pid is the supervisor's (a host pid, as ujail's); the program is its
only child, pid 1 of its own pid namespace."""

import os
import socket
import stat
import subprocess
import time

import pytest

from pyprocd.process import elfdeps
from pyprocd.process import jail as jailmod
from tests.core.harness import Supervisor

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="jails need root (CI runs as root)")


# -- parent side: dependencies and the plan ----------------------------------------------------


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def _ldd(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        words = line.split()
        for word in words:
            if word.startswith("/"):
                found.add(os.path.realpath(word))
    return found


@pytest.mark.parametrize("program", ["/bin/sleep", "/usr/bin/logger", "/bin/sh"])
def test_elf_dependencies_are_what_the_loader_loads(program):
    deps = elfdeps.dependencies(program)
    assert deps[0] == program.encode()
    assert {os.path.realpath(d).decode() for d in deps[1:]} == _ldd(program)


def test_script_dependencies_follow_the_interpreter(tmp_path):
    script = tmp_path / "s"
    script.write_text("#!/bin/sh -e\nexit 0\n")
    deps = elfdeps.dependencies(str(script))
    assert deps[:2] == [str(script).encode(), b"/bin/sh"]
    assert any(d.endswith(b"libc.so.6") or b"libc.so" in d for d in deps)


def test_missing_library_is_an_error(tmp_path):
    copy = tmp_path / "prog"
    copy.write_bytes(_read("/bin/sleep", "rb").replace(b"libc.so.6", b"libq.so.6"))
    with pytest.raises(elfdeps.DepsError, match="libq.so.6 not found"):
        elfdeps.dependencies(str(copy))


class Spec:
    def __init__(self, jail, command=("/bin/sleep", "1"), **kw):
        self.jail = jail
        self.command = list(command)
        self.trace = False
        self.term_timeout = 5
        self.env = kw.pop("env", ())
        self.user = kw.pop("user", None)
        self.group = kw.pop("group", None)
        self.raw = kw.pop("raw", {})


@root_only
@pytest.mark.parametrize("jail, reason", [
    ({"procfs": "yes"}, "'procfs' must be a boolean"),
    ({"name": 5, "log": True}, "'name' must be a string"),
    ({"mount": ["/etc"]}, "'mount' must be a table"),
    ({"setns": {"pid": 1}}, "'setns' must be an array"),
    ({"frobnicate": True}, "unknown key 'frobnicate'"),
    ({"mount": {"/nonexistent/x": "0"}}, "/nonexistent/x does not exist"),
    ({"mount": {"etc": "0"}}, "is not absolute"),
    ({"console": True, "procfs": True}, "'console' is not supported"),
    ({"netns": True}, "'netns' needs a jail 'name'"),
    ({}, "no namespace asked for"),
    ({"setns": [{"pid": 1, "namespaces": ["mnt"]}]}, "unknown namespace 'mnt'"),
])
def test_plan_refuses_what_it_cannot_honour(jail, reason):
    with pytest.raises(jailmod.JailError, match=reason.replace("(", r"\(")):
        jailmod.prepare(Spec(jail))


@root_only
def test_plan_refuses_a_relative_program_and_oci_keys():
    with pytest.raises(jailmod.JailError, match="not an absolute path"):
        jailmod.prepare(Spec({"procfs": True}, command=["sleep", "1"]))
    with pytest.raises(jailmod.JailError, match="'bundle' is not supported"):
        jailmod.prepare(Spec({"procfs": True}, raw={"bundle": "/x"}))
    with pytest.raises(jailmod.JailError, match="extroot /nonexistent is not a directory"):
        jailmod.prepare(Spec({"procfs": True}, raw={"extroot": "/nonexistent"}))
    with pytest.raises(jailmod.JailError, match="longer than 8"):
        jailmod.prepare(Spec({"procfs": True}, raw={"tmpoverlaysize": "123456789"}))


@root_only
def test_plan_mount_table_is_in_strcmp_order_with_the_program_and_its_libraries():
    plan = jailmod.prepare(Spec({"procfs": True, "mount": {"/etc/hosts": "1"}}))
    targets = [m.target for m in plan.mounts]
    assert targets == sorted(targets)
    assert b"/bin/sleep" in targets and b"/dev" in targets and b"/proc/sys" in targets
    assert any(t.endswith(b"libc.so.6") for t in targets)
    hosts = next(m for m in plan.mounts if m.target == b"/etc/hosts")
    sleep = next(m for m in plan.mounts if m.target == b"/bin/sleep")
    assert hosts.remount == 0 and sleep.remount == jailmod.RO
    assert plan.env == {b"container": b"ujail"}


# -- real jailed instances ---------------------------------------------------------------------


# what the tests run in jails (the jailed process is a copy of the daemon until its
# exec, and its exe link reads differently once it is in its own mount namespace)
PROGRAMS = {"sleep", "dash", "bash", "sh", "busybox"}


def _program(pid):
    """The jailed program: the supervisor's only child, once it has exec'd."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = _read(f"/proc/{pid}/task/{pid}/children").split()
        try:
            # /proc/PID/exe changes early in execve; argv and environ are
            # readable only once the new stack is built, so wait for both.
            if (kids and os.path.basename(os.readlink(f"/proc/{kids[0]}/exe")) in PROGRAMS
                    and _read(f"/proc/{kids[0]}/cmdline", "rb")):
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"supervisor {pid} has no child that exec'd")


def _ns(pid, name):
    return os.readlink(f"/proc/{pid}/ns/{name}")


def _mountinfo(pid):
    """{mount point: (options, fs type)}, in file order."""
    mounts = {}
    for line in _read(f"/proc/{pid}/mountinfo").splitlines():
        left, right = line.split(" - ")
        fields = left.split()
        mounts[fields[4]] = (fields[5].split(","), right.split()[0])
    return mounts


def _hostname_of(pid):
    from pyprocd.process import shim

    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            fd = os.open(f"/proc/{pid}/ns/uts", os.O_RDONLY)
            shim.setns(fd, shim.CLONE_NEWUTS)
            os.write(w, os.uname().nodename.encode())
        finally:
            os._exit(0)
    os.close(w)
    name = os.read(r, 256).decode()
    os.close(r)
    os.waitpid(child, 0)
    return name


def _status(pid, field):
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].split()
    return None


@pytest.fixture
def sup(tmp_path):
    s = Supervisor(tmp_path)
    yield s
    s.close()


def _start(sup, instances, name="j"):
    assert sup.call("set", {"name": name, "instances": instances})[0] == 0
    for inst in instances:
        sup.wait(lambda inst=inst: sup.inst(name, inst).running or sup.inst(name, inst).spawn_error,
                 10)


def _listed(sup, name, inst):
    return sup.call("list", {"name": name})[1][name]["instances"][inst]


@root_only
def test_namespaces_mounts_devices_hostname_env(sup, tmp_path):
    _start(sup, {"a": {"command": ["/bin/sleep", "100"], "env": {"FOO": "bar"},
                       "jail": {"name": "jailtest", "hostname": "inside", "procfs": True,
                                "sysfs": True, "mount": {}}}})
    inst = sup.inst("j", "a")
    assert inst.running, inst.spawn_error
    program = _program(inst.pid)
    differ = {ns for ns in ("mnt", "pid", "ipc", "uts", "net", "user", "cgroup")
              if _ns(program, ns) != _ns(os.getpid(), ns)}
    assert differ == {"mnt", "pid", "ipc", "uts"}
    assert _status(program, "NSpid") == [str(program), "1"]
    assert sup.wait(lambda: _read(f"/proc/{inst.pid}/comm").strip() == "jailtest", 10)
    assert _hostname_of(program) == "inside"
    assert os.uname().nodename != "inside"
    mounts = _mountinfo(program)
    assert next(iter(mounts)) == "/" and mounts["/"][1] == "tmpfs" and "noatime" in mounts["/"][0]
    host_points = set(_mountinfo(os.getpid())) - {"/", "/proc", "/sys", "/dev", "/dev/pts",
                                                  "/dev/shm", "/proc/sys", "/sys/firmware"}
    assert not host_points & set(mounts), "a host mount point is visible inside"
    assert "ro" in mounts["/bin/sleep"][0]
    assert mounts["/dev"][1] == "tmpfs" and {"nosuid", "noexec", "noatime"} <= set(mounts["/dev"][0])
    assert mounts["/proc"][1] == "proc" and "ro" in mounts["/proc/sys"][0]
    assert mounts["/sys"][1] == "sysfs" and "ro" in mounts["/sys"][0]
    assert list(mounts)[1:] == sorted(list(mounts)[1:])
    dev = f"/proc/{program}/root/dev"
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        st = os.lstat(f"{dev}/{name}")
        assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666
    assert os.readlink(f"{dev}/fd") == "/proc/self/fd"
    assert os.readlink(f"/proc/{program}/cwd") == "/"
    environ = _read(f"/proc/{program}/environ", "rb").split(b"\0")[:-1]
    assert environ == [b"container=ujail", b"FOO=bar"]
    assert not os.path.lexists(f"/tmp/pyprocd-jail-{inst.pid}")  # the root's directory
    listed = _listed(sup, "j", "a")
    assert listed["jail"] == {"name": "jailtest", "hostname": "inside", "procfs": True,
                              "sysfs": True, "ubus": False, "log": False, "ronly": False,
                              "netns": False, "userns": False, "cgroupsns": False,
                              "console": False}


@root_only
def test_read_only_and_writable_mounts(sup, tmp_path):
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    script = f"echo x > {ro}/f; echo $? > {rw}/status; echo y > {rw}/f; exec /bin/sleep 100"
    _start(sup, {"a": {"command": ["/bin/sh", "-c", script],
                       "jail": {"mount": {str(ro): "0", str(rw): "1", "/bin/sleep": "0"}}}})
    inst = sup.inst("j", "a")
    assert inst.running, inst.spawn_error
    program = _program(inst.pid)
    sup.wait(lambda: (rw / "f").exists(), 10)
    assert (rw / "status").read_text().strip() != "0"
    assert not (ro / "f").exists() and (rw / "f").read_text() == "y\n"
    mounts = _mountinfo(program)
    assert "ro" in mounts[str(ro)][0] and "rw" in mounts[str(rw)][0]
    assert _listed(sup, "j", "a")["mount"] == {str(ro): "0", str(rw): "1", "/bin/sleep": "0"}


@root_only
def test_ronly_root(sup):
    _start(sup, {"a": {"command": ["/bin/sleep", "100"], "jail": {"ronly": True}}})
    program = _program(sup.inst("j", "a").pid)
    assert "ro" in _mountinfo(program)["/"][0]


@root_only
def test_ubus_socket_inside_only_when_asked(sup, tmp_path):
    path = str(tmp_path / "ubus.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    sup.spawner.jail_sockets = {"ubus": path}
    try:
        _start(sup, {"with": {"command": ["/bin/sleep", "100"], "jail": {"ubus": True}},
                     "without": {"command": ["/bin/sleep", "100"], "jail": {"log": True}}})
        inside = f"/proc/{_program(sup.inst('j', 'with').pid)}/root/var/run/ubus/ubus.sock"
        assert stat.S_ISSOCK(os.stat(inside).st_mode)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(inside)  # the jail's socket is the host's bus
        listener.settimeout(10)
        listener.accept()[0].close()
        client.close()
        other = _program(sup.inst("j", "without").pid)
        assert not os.path.lexists(f"/proc/{other}/root/var/run/ubus/ubus.sock")
        assert not os.path.lexists(f"/proc/{other}/root/var/run/ubus")
    finally:
        listener.close()


@root_only
def test_log_socket_receives_syslog_lines(sup):
    _start(sup, {"a": {"command": ["/bin/sh", "-c",
                                   "/usr/bin/logger -t jailed hello-from-the-jail; exec /bin/sleep 100"],
                       "jail": {"log": True, "mount": {"/usr/bin/logger": "0",
                                                      "/bin/sleep": "0"}}}})
    assert sup.inst("j", "a").running, sup.inst("j", "a").spawn_error
    assert sup.wait(lambda: any("hello-from-the-jail" in m for m in sup.syslog.drain()), 10)


@root_only
def test_user_group_no_new_privs_inside(sup):
    _start(sup, {"a": {"command": ["/bin/sleep", "100"], "user": "nobody", "group": "nogroup",
                       "no_new_privs": True, "jail": {"procfs": True}}})
    inst = sup.inst("j", "a")
    assert inst.running, inst.spawn_error
    program = _program(inst.pid)
    sup.wait(lambda: _status(program, "Uid")[0] == "65534", 10)
    assert _status(program, "Uid") == ["65534"] * 4
    assert _status(program, "Gid")[0] == str(__import__("grp").getgrnam("nogroup").gr_gid)
    assert _status(program, "NoNewPrivs") == ["1"]
    assert "/etc/passwd" in _mountinfo(program)


@root_only
@pytest.mark.parametrize("keys, uid, gid", [({}, 65534, 65534),
                                            ({"user": "daemon"}, 1, 1)])
def test_userns_maps_root_inside_to_the_instance_user(sup, keys, uid, gid):
    import pwd

    uid = pwd.getpwnam(keys["user"]).pw_uid if keys else uid
    gid = pwd.getpwnam(keys["user"]).pw_gid if keys else gid
    _start(sup, {"a": {"command": ["/bin/sleep", "100"], "jail": {"userns": True}, **keys}})
    inst = sup.inst("j", "a")
    assert inst.running, inst.spawn_error
    program = _program(inst.pid)
    assert _ns(program, "user") != _ns(os.getpid(), "user")
    assert _read(f"/proc/{program}/uid_map").split() == ["0", str(uid), "1"]
    assert _read(f"/proc/{program}/gid_map").split() == ["0", str(gid), "1"]
    assert _status(program, "Uid") == [str(uid)] * 4   # as the host sees it
    assert _status(program, "Gid") == [str(gid)] * 4
    assert _listed(sup, "j", "a")["jail"]["userns"] is True


@root_only
def test_stop_escalates_to_sigkill_after_term_timeout(sup):
    # sleep has no SIGTERM handler: as pid 1 of its namespace it ignores SIGTERM
    _start(sup, {"a": {"command": ["/bin/sleep", "100"], "term_timeout": 1,
                       "jail": {"procfs": True}}})
    inst = sup.inst("j", "a")
    supervisor, program = inst.pid, _program(inst.pid)
    started = time.monotonic()
    assert sup.call("delete", {"name": "j"})[0] == 0
    assert sup.wait(lambda: not os.path.exists(f"/proc/{supervisor}"), 30)
    assert time.monotonic() - started >= 0.9
    assert sup.wait(lambda: not os.path.exists(f"/proc/{program}"), 10)


@root_only
def test_exit_status_is_the_programs(sup):
    _start(sup, {"a": {"command": ["/bin/sh", "-c", "exit 7"], "jail": {"procfs": True}}})
    sup.wait(lambda: not sup.inst("j", "a").running and sup.inst("j", "a").exit_code, 10)
    assert _listed(sup, "j", "a")["exit_code"] == 7


@root_only
def test_bad_jails_are_instance_errors_and_others_run(sup, tmp_path):
    dead = subprocess.Popen(["/bin/true"])
    dead.wait()
    _start(sup, {
        "good": {"command": ["/bin/sleep", "100"], "jail": {"procfs": True}},
        "types": {"command": ["/bin/sleep", "100"], "jail": {"procfs": 1, "mount": "x"}},
        "missing": {"command": ["/bin/sleep", "100"], "jail": {"mount": {"/no/such": "1"}}},
        "dead": {"command": ["/bin/sleep", "100"],
                 "jail": {"procfs": True, "setns": [{"pid": dead.pid, "namespaces": ["net"]}]}},
    })
    errors = {name: _listed(sup, "j", name).get("errors") for name in ("types", "missing", "dead")}
    assert "must be a boolean" in errors["types"][0]
    assert "/no/such does not exist" in errors["missing"][0]
    assert f"no process {dead.pid}" in errors["dead"][0]
    assert sup.inst("j", "good").running
    assert not any(sup.inst("j", n).running for n in errors)


@root_only
def test_setns_joins_a_live_process_namespace(sup):
    holder = subprocess.Popen(["unshare", "--net", "/bin/sleep", "100"])
    try:
        deadline = time.monotonic() + 10
        while _ns(holder.pid, "net") == _ns(os.getpid(), "net") and time.monotonic() < deadline:
            time.sleep(0.01)
        _start(sup, {"a": {"command": ["/bin/sleep", "100"],
                           "jail": {"procfs": True,
                                    "setns": [{"pid": holder.pid, "namespaces": ["net"]}]}}})
        inst = sup.inst("j", "a")
        assert inst.running, inst.spawn_error
        assert _ns(_program(inst.pid), "net") == _ns(holder.pid, "net")
    finally:
        holder.kill()
        holder.wait()


JAIL_TARGETS = ("/bin/sleep", "/dev/log", "/proc/sys", "/sys/firmware", "/etc/resolv.conf")


def _our_mounts():
    """The host's mount lines a jail could have left: its root directory or one of
    its targets (other sessions on this machine mount elsewhere meanwhile)."""
    return sorted(line for line in _read("/proc/self/mountinfo").splitlines()
                  if "pyprocd-jail" in line or line.split()[4].endswith(JAIL_TARGETS)
                  or line.split()[4] == "/dev/pts" and "newinstance" in line)


def _host_state():
    me = os.getpid()
    children = [p for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == me]
    return (_our_mounts(), children)


def _ppid(pid):
    try:
        return int(_read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


CYCLES = int(os.environ.get("PYPROCD_JAIL_CYCLES", "200"))


@root_only
def test_start_stop_cycles_leave_nothing_behind(sup):
    before = _host_state()
    namespaces = {ns: _ns(os.getpid(), ns) for ns in ("mnt", "pid", "ipc", "uts", "net")}
    instance = {"command": ["/bin/sh", "-c", "trap 'exit 0' TERM; /bin/sleep 100 & wait"],
                "term_timeout": 1,
                "jail": {"procfs": True, "sysfs": True, "log": True, "hostname": "c",
                         "mount": {"/bin/sleep": "0"}}}
    supervisors = []
    for _ in range(CYCLES):
        _start(sup, {"a": instance})
        inst = sup.inst("j", "a")
        assert inst.running, inst.spawn_error
        supervisors.append(inst.pid)
        shell = _program(inst.pid)
        # its sleep runs: the shell's TERM trap is set (pid 1 ignores an untrapped TERM)
        assert sup.wait(lambda shell=shell: _read(f"/proc/{shell}/task/{shell}/children"), 10)
        assert sup.call("delete", {"name": "j"})[0] == 0
        assert sup.wait(lambda: "j" not in sup.mgr.services, 30)
    sup.wait(lambda: _host_state() == before, 10)
    assert _host_state() == before
    assert not [p for p in supervisors if os.path.lexists(f"/tmp/pyprocd-jail-{p}")]
    assert {ns: _ns(os.getpid(), ns) for ns in namespaces} == namespaces


@root_only
def test_capabilities_and_seccomp_inside_a_jail(sup, tmp_path):
    import json

    only = ["CAP_NET_BIND_SERVICE"]
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"bounding": only, "effective": only, "permitted": only,
                                "inheritable": only, "ambient": only}))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"}]}))
    _start(sup, {"a": {"command": ["/bin/sleep", "100"], "user": "nobody",
                       "capabilities": str(caps), "seccomp": str(policy),
                       "jail": {"procfs": True}}})
    inst = sup.inst("j", "a")
    assert inst.running, inst.spawn_error
    program = _program(inst.pid)
    assert _ns(program, "mnt") != _ns(os.getpid(), "mnt")
    assert _status(program, "Uid") == ["65534"] * 4
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(_status(program, key)[0], 16) == 1 << 10, key
    assert _status(program, "Seccomp") == ["2"] and _status(program, "NoNewPrivs") == ["1"]
    environ = _read(f"/proc/{program}/environ", "rb").split(b"\0")[:-1]
    assert environ == [b"container=ujail"]  # the filter is loaded before exec: no SECCOMP_FILE


@root_only
def test_extroot_is_the_root_and_tmpoverlay_takes_the_writes(sup, tmp_path):
    extroot = tmp_path / "root"
    for sub in ("bin", "lib", "lib64", "usr", "etc"):
        (extroot / sub).mkdir(parents=True)
    # the extroot brings its own program: here the host's, bound in
    instance = {"command": ["/bin/sh", "-c", "echo hi > /etc/written; exec /bin/sleep 100"],
                "extroot": str(extroot), "tmpoverlaysize": "1M",
                "jail": {"mount": {"/bin/sh": "0", "/bin/sleep": "0", "/lib": "0",
                                   "/lib64": "0", "/usr": "0"}}}
    _start(sup, {"a": instance})
    inst = sup.inst("j", "a")
    assert inst.running, inst.spawn_error
    program = _program(inst.pid)
    mounts = _mountinfo(program)
    assert mounts["/"][1] == "overlay"
    assert sup.wait(lambda: os.path.exists(f"/proc/{program}/root/etc/written"), 10)
    assert not (extroot / "etc" / "written").exists()  # the write went to the overlay
    assert not os.path.lexists(f"/tmp/pyprocd-jail-{inst.pid}-overlay")
    assert _listed(sup, "j", "a")["extroot"] == str(extroot)


@root_only
@pytest.mark.parametrize("jail, expected", [
    ({"netns": True, "name": "n"}, {"net", "pid", "ipc"}),
    ({"cgroupsns": True}, {"cgroup", "pid", "ipc"}),
    ({"hostname": "h"}, {"uts", "pid", "ipc"}),
    ({"log": True, "netns": True, "name": "n", "cgroupsns": True, "hostname": "h"},
     {"mnt", "net", "cgroup", "uts", "pid", "ipc"}),
])
def test_exactly_the_namespaces_asked(sup, jail, expected):
    _start(sup, {"a": {"command": ["/bin/sleep", "100"], "jail": jail}})
    inst = sup.inst("j", "a")
    assert inst.running, inst.spawn_error
    program = _program(inst.pid)
    differ = {ns for ns in ("mnt", "pid", "ipc", "uts", "net", "user", "cgroup")
              if _ns(program, ns) != _ns(os.getpid(), ns)}
    assert differ == expected
    if "net" in expected:  # an empty one: only a loopback device
        assert [line.split(":")[0].strip() for line in
                _read(f"/proc/{program}/net/dev").splitlines()[2:]] == ["lo"]
