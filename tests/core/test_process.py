"""Child setup read back from /proc of real children; logging to a syslog socket; reaping."""

import os
import re

import pytest

from tests.conftest import IS_ROOT, needs_root
from tests.core.harness import Supervisor
from tests.core.test_lifecycle import exec_done, listed


@pytest.fixture
def sup(tmp_path):
    s = Supervisor(tmp_path)
    yield s
    s.close()


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def proc_limits(pid):
    out = {}
    with open(f"/proc/{pid}/limits") as f:
        for line in f.readlines()[1:]:
            out[line[:26].strip()] = (line[26:47].strip(), line[47:68].strip())
    return out


def start(sup, cfg, name="p"):
    sup.call("set", {"name": name, "instances": {"i": cfg}})
    inst = sup.inst(name, "i")
    assert inst.running, sup.call("list", {"name": name})
    assert sup.wait(lambda: exec_done(inst.pid, cfg["command"][0]))
    return inst


@needs_root
def test_limits_nice_and_identity_from_proc(sup):
    inst = start(sup, {
        "command": ["/bin/sleep", "1000"], "nice": 7, "user": "nobody", "group": "nogroup",
        "limits": {"nofile": "321 654", "core": "unlimited", "stack": "9000000", "nproc": "77 88"}})
    status = proc_status(inst.pid)
    assert status["Uid"].split()[:2] == ["65534", "65534"]
    assert status["Gid"].split()[:2] == ["65534", "65534"]
    assert status["Groups"].split() == ["65534"]  # root's supplementary groups dropped
    limits = proc_limits(inst.pid)
    assert limits["Max open files"] == ("321", "654")
    assert limits["Max core file size"] == ("unlimited", "unlimited")
    assert limits["Max processes"] == ("77", "88")
    # one number: soft set, hard kept at the daemon's hard limit
    import resource
    hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
    assert limits["Max stack size"][0] == "9000000"
    assert limits["Max stack size"][1] == ("unlimited" if hard == resource.RLIM_INFINITY else str(hard))
    with open(f"/proc/{inst.pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[16]) == 7


@needs_root
def test_user_gets_its_supplementary_groups(sup, tmp_path):
    import grp
    import pwd
    # Pick a non-root user that has supplementary groups, if the host has one.
    for pw in pwd.getpwall():
        groups = {g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem}
        if pw.pw_uid != 0 and groups - {pw.pw_gid}:
            break
    else:
        pytest.skip("no user with supplementary groups on this host")
    inst = start(sup, {"command": ["/bin/sleep", "1000"], "user": pw.pw_name})
    got = {int(g) for g in proc_status(inst.pid)["Groups"].split()}
    assert got == groups | {pw.pw_gid}


def test_environment_is_daemon_start_env_plus_env(sup, monkeypatch):
    # What the interpreter added to os.environ after start must not leak.
    monkeypatch.setitem(os.environ, "PYPROCD_TEST_LEAK", "1")
    inst = start(sup, {"command": ["/bin/sleep", "1000"], "env": {"FOO": "bar", "PATH": "/bin"}})
    with open(f"/proc/{inst.pid}/environ", "rb") as f:
        env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if e)
    assert env[b"FOO"] == b"bar" and env[b"PATH"] == b"/bin"
    assert b"PYPROCD_TEST_LEAK" not in env
    base = dict(sup.spawner.base_env)
    base.pop(b"PATH", None)
    assert all(env.get(k) == v for k, v in base.items())


def test_stdio_and_default_signal_dispositions(sup):
    inst = start(sup, {"command": ["/bin/sleep", "1000"]})
    assert os.readlink(f"/proc/{inst.pid}/fd/0") == "/dev/null"
    sigign = int(proc_status(inst.pid)["SigIgn"], 16)
    assert not sigign & (1 << (13 - 1)), "SIGPIPE must not stay ignored in instances"


def test_unprivileged_identity_switch_fails_closed(sup):
    if not IS_ROOT:
        # Not root: switching to nobody must fail (EPERM) and never run as us.
        sup.call("set", {"name": "u", "instances": {"i": {
            "command": ["/bin/sleep", "1000"], "user": "nobody"}}})
        inst = sup.inst("u", "i")
        assert sup.wait(lambda: inst.exits)
        assert inst.exit_code == 127 and "user/group" in inst.spawn_error
    else:
        # Root: a user that resolves to uid 0 is root by request, not by accident.
        inst = start(sup, {"command": ["/bin/sleep", "1000"], "user": "root"})
        assert proc_status(inst.pid)["Uid"].split()[0] == "0"


def test_stdout_stderr_lines_reach_syslog_with_ident_facility_priority(sup):
    sup.call("set", {"name": "l", "instances": {"i": {
        "command": ["/bin/sh", "-c", "echo out-one; echo err-one >&2; printf 'partial'"],
        "stdout": True, "stderr": True, "facility": "local3"}}})
    inst = sup.inst("l", "i")
    pid = inst.pid
    assert sup.wait(lambda: len(sup.syslog.drain()) >= 3)
    lines = sup.syslog.messages
    local3 = 19 << 3
    pattern = r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d sh\[(\d+)\]: (.*)"
    parsed = [re.fullmatch(pattern, line).groups() for line in lines]
    assert (str(local3 | 6), str(pid), "out-one") in parsed  # LOG_INFO for stdout
    assert (str(local3 | 3), str(pid), "err-one") in parsed  # LOG_ERR for stderr
    assert (str(local3 | 6), str(pid), "partial") in parsed  # flushed at EOF


def test_stdout_off_goes_to_devnull(sup):
    inst = start(sup, {"command": ["/bin/sleep", "1000"]})
    assert os.readlink(f"/proc/{inst.pid}/fd/1") == "/dev/null"
    assert os.readlink(f"/proc/{inst.pid}/fd/2") == "/dev/null"


def _zombies_of(pid):
    zombies = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == pid:
                zombies.append(int(entry))
    return zombies


def test_no_zombie_after_1000_spawn_exit_cycles(sup):
    sup.call("set", {"name": "z", "instances": {"i": {
        "command": ["/bin/true"], "respawn": ["0", "0", "0"]}}})
    inst = sup.inst("z", "i")
    assert sup.wait(lambda: len(inst.exits) and inst.exits[-1].respawn_count == 0
                    and _count(sup) >= 1000, timeout=300)
    sup.call("delete", {"name": "z"})
    assert sup.wait(lambda: not sup.mgr.services)
    sup.pump(0.1)
    assert _zombies_of(os.getpid()) == []


def _count(sup):
    return sum(1 for t, _ in sup.notifications if t == "instance.stop")


def test_daemonising_service_is_followed_through_its_pidfile(sup, tmp_path):
    try:
        from pyprocd.process import shim
        shim.set_child_subreaper(True)
    except (ImportError, OSError) as e:
        pytest.skip(f"cannot become a subreaper here: {e}")
    try:
        sup.spawner.subreaper = True
        pidfile = tmp_path / "d.pid"
        # The classic daemon: fork, the child writes the pidfile, the parent exits 0.
        script = f"sleep 1000 & echo $! > {pidfile}.new; mv {pidfile}.new {pidfile}; exit 0"
        sup.call("set", {"name": "dm", "instances": {"i": {
            "command": ["/bin/sh", "-c", script], "pidfile": str(pidfile),
            "respawn": ["3600", "0", "5"]}}})
        inst = sup.inst("dm", "i")
        first = inst.pid
        assert sup.wait(lambda: inst.running and inst.pid != first)
        daemon_pid = inst.pid
        assert pidfile.read_text().strip() == str(daemon_pid)
        assert sup.wait(lambda: exec_done(daemon_pid, "sleep"))
        assert inst.respawn_count == 0 and len(inst.exits) == 0  # not counted as a crash
        sup.call("delete", {"name": "dm"})
        assert sup.wait(lambda: not sup.mgr.services)
        # The successor was stopped and reaped by us: no process, no zombie.
        assert sup.wait(lambda: not os.path.exists(f"/proc/{daemon_pid}"))
    finally:
        shim.set_child_subreaper(False)



@pytest.fixture
def subreaper(sup):
    try:
        from pyprocd.process import shim
        shim.set_child_subreaper(True)
    except (ImportError, OSError) as e:
        pytest.skip(f"cannot become a subreaper here: {e}")
    sup.spawner.subreaper = True
    yield sup
    shim.set_child_subreaper(False)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _hijack_attempt(sup, victim_pid, handoff):
    """Instance `b` waits for `handoff` to name a pid, writes it into its own pidfile
    and exits 0, as a daemonising service would after naming its successor."""
    pidfile = handoff.parent / "b.pid"
    script = (f"while [ ! -s {handoff} ]; do sleep 0.05; done; "
              f"cat {handoff} > {pidfile}.new; mv {pidfile}.new {pidfile}; exit 0")
    sup.call("set", {"name": "b", "instances": {"i": {
        "command": ["/bin/sh", "-c", script], "pidfile": str(pidfile)}}})
    return sup.inst("b", "i")


def _hijack_refused(sup, a, b, victim):
    assert sup.wait(lambda: not b.running and len(b.exits) == 1)
    assert a.running and a.pid == victim and _alive(victim)
    sup.call("delete", {"name": "b"})
    assert sup.wait(lambda: "b" not in sup.mgr.services)
    assert _alive(victim) and a.pid == victim
    assert sup.call("list", {"name": "a"})[1]["a"]["instances"]["i"]["pid"] == victim


def test_pidfile_naming_an_older_process_is_not_followed(subreaper, tmp_path):
    sup = subreaper
    sup.call("set", {"name": "a", "instances": {"i": {"command": ["/bin/sleep", "1000"]}}})
    a = sup.inst("a", "i")
    victim = a.pid
    handoff = tmp_path / "handoff"
    handoff.write_text(f"{victim}\n")
    b = _hijack_attempt(sup, victim, handoff)
    _hijack_refused(sup, a, b, victim)


def test_pidfile_naming_another_instances_process_is_not_followed(subreaper, tmp_path):
    # `a` starts after `b`, so only ownership tells them apart.
    sup = subreaper
    handoff = tmp_path / "handoff"
    b = _hijack_attempt(sup, None, handoff)
    assert b.running
    sup.call("set", {"name": "a", "instances": {"i": {"command": ["/bin/sleep", "1000"]}}})
    a = sup.inst("a", "i")
    victim = a.pid
    handoff.write_text(f"{victim}\n")
    _hijack_refused(sup, a, b, victim)


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_out_of_file_descriptors_is_an_instance_error_not_a_crash(sup):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    start(sup, {"command": ["/bin/sleep", "1000"]}, name="warm")  # the loop's own fds exist now
    assert sup.call("delete", {"name": "warm"})[0] == 0
    assert sup.wait(lambda: not sup.mgr.services)
    before = _open_fds()
    instances = {f"i{n}": {"command": ["/bin/sleep", "1000"], "stdout": True, "stderr": True}
                 for n in range(10)}
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 8, hard))
    try:
        status, _ = sup.call("set", {"name": "many", "instances": instances})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert status == 0
    svc = sup.mgr.services["many"]
    assert sorted(svc.instances) == sorted(instances)  # whole: every instance registered
    refused = [i for i in svc.instances.values() if not i.running]
    assert refused, "the limit was not low enough to refuse any start"
    for inst in refused:
        assert "Too many open files" in inst.spawn_error and inst.failed
    # nothing leaked: what is open now belongs to the running instances' log pipes
    running = sum(1 for i in svc.instances.values() if i.running)
    assert sup.call("delete", {"name": "many"})[0] == 0
    assert sup.wait(lambda: not sup.mgr.services)
    # The log pipes close once their EOF is read, which may come a turn after the exit.
    assert sup.wait(lambda: _open_fds() <= before), (running, before, _open_fds())


# -- procd's environment and group facts for a child (procd service/instance.c) ----------

def proc_environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        entries = [e for e in f.read().split(b"\0") if e]
    return [e.decode(errors="replace") for e in entries]


def env_values(pid, key):
    return [e.partition("=")[2] for e in proc_environ(pid) if e.partition("=")[0] == key]


@pytest.fixture
def setlbf_sup(tmp_path):
    library = tmp_path / "libsetlbf.so"   # stands in for /lib/libsetlbf.so (never written)
    library.write_bytes(b"")
    s = Supervisor(tmp_path, spawner_options={"setlbf": str(library)})
    yield s, str(library)
    s.close()


def test_captured_stdout_gets_libsetlbf_preloaded(setlbf_sup):
    sup, library = setlbf_sup
    inst = start(sup, {"command": ["/bin/sleep", "1000"], "stdout": True})
    assert env_values(inst.pid, "LD_PRELOAD") == [library]
    plain = start(sup, {"command": ["/bin/sleep", "1000"]}, name="plain")
    assert env_values(plain.pid, "LD_PRELOAD") == []


def test_libsetlbf_is_chained_with_the_instances_own_preload(setlbf_sup):
    sup, library = setlbf_sup
    inst = start(sup, {"command": ["/bin/sleep", "1000"], "stdout": True,
                       "env": {"LD_PRELOAD": "/nonexistent/own.so"}})
    # exactly one entry: glibc's loader takes the last duplicate, musl's the first
    assert env_values(inst.pid, "LD_PRELOAD") == [f"{library}:/nonexistent/own.so"]


def test_no_libsetlbf_when_the_library_is_absent(tmp_path):
    sup = Supervisor(tmp_path, spawner_options={"setlbf": str(tmp_path / "absent.so")})
    try:
        inst = start(sup, {"command": ["/bin/sleep", "1000"], "stdout": True})
        assert env_values(inst.pid, "LD_PRELOAD") == []
    finally:
        sup.close()


def test_seccomp_without_jail_or_trace_names_its_file_in_the_environment(sup, tmp_path):
    import json
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}))
    inst = start(sup, {"command": ["/bin/sleep", "1000"], "seccomp": str(policy)})
    assert env_values(inst.pid, "SECCOMP_FILE") == [str(policy)]
    plain = start(sup, {"command": ["/bin/sleep", "1000"]}, name="plain")
    assert env_values(plain.pid, "SECCOMP_FILE") == []


@needs_root
def test_user_with_group_gets_the_users_own_supplementary_groups(sup):
    import grp
    import pwd
    nobody = pwd.getpwnam("nobody")
    other = next((g for g in grp.getgrall() if g.gr_gid not in (0, nobody.pw_gid)
                  and "nobody" not in g.gr_mem), None)
    if other is None:
        pytest.skip("no group on this host to set besides nobody's own")
    inst = start(sup, {"command": ["/bin/sleep", "1000"], "user": "nobody", "group": other.gr_name})
    status = proc_status(inst.pid)
    expected = set(os.getgrouplist("nobody", nobody.pw_gid))   # initgroups(user, user's gid)
    assert {int(g) for g in status["Groups"].split()} == expected
    assert status["Gid"].split()[:2] == [str(other.gr_gid)] * 2


# -- which primitive starts an instance -------------------------------------------------------


@pytest.fixture
def forks(monkeypatch):
    """Every os.fork() the daemon side makes from now on."""
    calls = []
    real_fork = os.fork

    def counting_fork():
        calls.append(True)
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    return calls


def test_plain_instance_starts_without_a_forked_python_child(sup, forks, tmp_path):
    # A relative command is looked up on the instance's own PATH, as execvpe does.
    inst = start(sup, {"command": ["sleep", "1000"], "env": {"PATH": f"{tmp_path}:/usr/bin:/bin"},
                       "stdout": True})
    assert sup.wait(lambda: exec_done(inst.pid, "sleep"))
    assert forks == []
    assert os.readlink(f"/proc/{inst.pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{inst.pid}/fd/2") == "/dev/null"
    assert os.readlink(f"/proc/{inst.pid}/fd/1").startswith("pipe:")
    sigign = int(proc_status(inst.pid)["SigIgn"], 16)
    assert not sigign & (1 << (13 - 1)), "SIGPIPE must not stay ignored in instances"


def test_instance_with_limits_still_gets_the_forked_child(sup, forks):
    inst = start(sup, {"command": ["/bin/sleep", "1000"], "limits": {"nofile": "77 88"}})
    assert sup.wait(lambda: exec_done(inst.pid, "/bin/sleep"))
    assert len(forks) == 1
    assert proc_limits(inst.pid)["Max open files"] == ("77", "88")


def test_exec_failure_reason_is_the_same_whichever_way_it_was_started(sup, tmp_path):
    script = tmp_path / "noexec"
    script.write_text("#!/bin/sh\n")  # exists but not executable: EACCES
    sup.call("set", {"name": "e", "instances": {
        "missing": {"command": ["not-on-path"], "env": {"PATH": str(tmp_path)}},
        "denied": {"command": [str(script)]},
        "denied_limited": {"command": [str(script)], "limits": {"nofile": "64"}}}})
    insts = [sup.inst("e", n) for n in ("missing", "denied", "denied_limited")]
    assert sup.wait(lambda: all(i.failed for i in insts))
    errors = {i.name: listed(sup, "e", i.name)["errors"] for i in insts}
    assert errors == {"missing": ["exec not-on-path: No such file or directory"],
                      "denied": [f"exec {script}: Permission denied"],
                      "denied_limited": [f"exec {script}: Permission denied"]}


class _ActiveRecorder:
    """A crash-survival recorder that notes, for each announcement and record,
    what ran at that moment."""

    active = True

    def __init__(self, argv):
        self.argv = argv
        self.events = []  # ("intent", identity, our children then) | ("spawn", pid, exec'd?)

    def changed(self):
        pass

    def intended(self, service, instance, identity):
        self.events.append(("intent", identity, _children()))

    def spawned(self, service, instance, pid, proc):
        self.events.append(("spawn", pid, exec_done(pid, self.argv[0])))

    def exited(self, service, instance, pid, status):
        pass


def _children():
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return {int(p) for p in f.read().split()}


def test_with_an_active_recorder_a_plain_process_is_announced_before_it_exists(tmp_path, forks):
    argv = ["/bin/sleep", "1000"]
    recorder = _ActiveRecorder(argv)
    s = Supervisor(tmp_path, recorder=recorder)
    try:
        s.call("set", {"name": "g", "instances": {
            f"i{k}": {"command": argv, "stdout": k == 0} for k in range(5)}})
        assert forks == []  # posix_spawn: no copy of the daemon, no Python in the child
        events = recorder.events
        assert [e[0] for e in events] == ["intent", "spawn"] * 5
        for (_i, identity, children), (_s, pid, _exec) in zip(events[::2], events[1::2]):
            assert pid not in children  # when announced, the process did not exist yet
            assert identity["argv"] == argv and identity["path"] == argv[0]
        first = s.mgr.services["g"].instances["i0"]
        pipe = events[0][1]["pipes"]
        assert [p["child_fd"] for p in pipe] == [1]
        assert pipe[0]["ino"] == os.stat(f"/proc/{first.pid}/fd/1").st_ino
        assert s.wait(lambda: all(exec_done(i.pid, "/bin/sleep")
                                  for i in s.mgr.services["g"].instances.values()))
    finally:
        s.close()


def test_with_an_active_recorder_a_forked_child_waits_until_it_is_on_record(tmp_path, forks):
    argv = ["/bin/sleep", "1000"]
    recorder = _ActiveRecorder(argv)
    s = Supervisor(tmp_path, recorder=recorder)
    try:
        s.call("set", {"name": "g", "instances": {
            f"i{k}": {"command": argv, "limits": {"nofile": "64"}} for k in range(5)}})
        assert len(forks) == 5
        assert recorder.events and all(e[0] == "spawn" for e in recorder.events)
        assert [e[2] for e in recorder.events] == [False] * 5  # none had exec'd yet
        assert s.wait(lambda: all(exec_done(i.pid, "/bin/sleep")
                                  for i in s.mgr.services["g"].instances.values()))
    finally:
        s.close()


def test_without_posix_spawn_every_instance_forks(sup, forks, monkeypatch):
    from pyprocd.process import spawn

    monkeypatch.setattr(spawn, "HAVE_POSIX_SPAWN", False)
    inst = start(sup, {"command": ["/bin/sleep", "1000"]})
    assert sup.wait(lambda: exec_done(inst.pid, "/bin/sleep"))
    assert len(forks) == 1
