"""pyprocd.prefork against the real C client (Debian's chiark-utils-bin prefork-interp).

The client keeps its sockets in /run/user/<uid>/prefork-interp (or under the
user's home): every client here runs in a private mount namespace of the test
with a tmpfs on /run/user, so nothing is written to the host, and every
process left in that namespace at the end is the test's own.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, SRC

CLIENT = shutil.which("prefork-interp")
pytestmark = [
    pytest.mark.skipif(CLIENT is None, reason="prefork-interp not installed "
                       "(Debian package chiark-utils-bin; .ci/run installs it)"),
    pytest.mark.skipif(not IS_ROOT, reason="needs root: the clients run in a mount namespace"),
]
DEADLINE = 60.0

SCRIPT = f"""
import json, os, sys, time
sys.path.insert(0, {str(SRC)!r})
from pyprocd.prefork import initialisation_complete

SETUP_PID = os.getpid()
initialisation_complete()

def parent_of(pid):
    with open(f"/proc/{{pid}}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])

mode = sys.argv[1]
if mode == "echo":
    json.dump({{"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(),
               "setup": SETUP_PID, "pid": os.getpid(), "monitor": os.getppid(),
               "server": parent_of(os.getppid()), "stdin": sys.stdin.read()}}, sys.stdout)
    print("to stderr", file=sys.stderr)
elif mode == "exit":
    sys.exit(int(sys.argv[2]))
elif mode == "signal":
    os.kill(os.getpid(), int(sys.argv[2]))
elif mode == "sleep":
    print(os.getpid(), parent_of(os.getppid()), flush=True)
    time.sleep(1000)
"""


def wait_for(condition, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def zombie_children(pid):
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += (task / "children").read_text().split()
    return [k for k in kids if not alive(int(k))]


class Namespace:
    """A mount namespace with a private /run/user, and the prefork-interp clients run in it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.script = tmp / "script.py"
        self.script.write_text(SCRIPT)
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
             ("mount -t tmpfs -o mode=755 tmpfs /run/user && mkdir -m 700 /run/user/0 "
              "&& echo ready && exec sleep 100000")], stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready"
        self.ns = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")

    def argv(self, *args, options=(), script=None):
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", f"--wd={self.tmp}", "--",
                CLIENT, "-U", *options, sys.executable, str(script or self.script), *args]

    def run(self, *args, options=(), stdin="", env=None, script=None):
        return subprocess.run(self.argv(*args, options=options, script=script), input=stdin,
                              text=True,
                              capture_output=True, cwd=self.tmp, env=env, timeout=DEADLINE,
                              check=False)

    def echo(self, *args, **kwargs):
        done = self.run("echo", *args, **kwargs)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout), done.stderr

    def members(self):
        """Pids in our namespace, the holder excepted."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.holder.pid:
                try:
                    if os.readlink(f"/proc/{entry}/ns/mnt") == self.ns:
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def close(self):
        try:
            leftovers = [p for p in self.members() if alive(p)]
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # it was on its way out (a server whose socket went away)
        finally:
            self.holder.kill()  # whatever happened above: the namespace goes with it
            self.holder.wait()
        return leftovers


@pytest.fixture
def ns(tmp_path):
    space = Namespace(tmp_path)
    yield space
    space.close()


def test_first_and_later_calls_get_argv_env_fds_and_cwd(ns):
    env = {"PATH": os.environ["PATH"], "FOO": "bar baz", "EMPTY": ""}
    first, err = ns.echo("a b", "", "c", stdin="input one", env=env)
    assert first["argv"] == [str(ns.script), "echo", "a b", "", "c"]
    assert first["env"] == env  # exactly the caller's environment, no PREFORK_INTERP
    assert first["stdin"] == "input one"
    assert first["cwd"] == str(ns.tmp)
    assert err == "to stderr\n"
    second, _ = ns.echo("x", stdin="input two", env=dict(env, FOO="other"))
    assert second["setup"] == first["setup"]  # served by the warm server: no new set-up
    assert second["server"] == first["server"] and second["pid"] != first["pid"]
    assert second["env"]["FOO"] == "other" and second["stdin"] == "input two"
    assert alive(first["server"]) and not alive(first["setup"])
    assert wait_for(lambda: not zombie_children(first["server"]))


def test_exit_codes_reach_the_caller(ns):
    for code in range(256):
        assert ns.run("exit", str(code)).returncode == code


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE,
                                 signal.SIGKILL])
def test_death_by_signal_is_reraised_by_the_client(ns, sig):
    assert ns.run("signal", str(int(sig))).returncode == -sig


def test_other_signals_are_reported_as_failures(ns):
    done = ns.run("signal", str(int(signal.SIGUSR1)))
    assert done.returncode == 127
    assert "invocation failed due to signal 10" in done.stderr


def test_fresh_replaces_the_server_and_kill_stops_it(ns):
    old, _ = ns.echo()
    fresh, _ = ns.echo(options=["-f"])
    assert fresh["setup"] != old["setup"]
    assert wait_for(lambda: not alive(old["server"]))  # its watcher saw the socket replaced
    assert ns.run("x", options=["--kill"]).returncode == 0
    assert wait_for(lambda: not alive(fresh["server"]))
    again, _ = ns.echo()
    assert again["setup"] not in (old["setup"], fresh["setup"])


def test_identity_options_select_servers(ns):
    a, _ = ns.echo(options=["-EPYPROCD_ID"], env={"PYPROCD_ID": "1", "PATH": os.environ["PATH"]})
    b, _ = ns.echo(options=["-EPYPROCD_ID"], env={"PYPROCD_ID": "2", "PATH": os.environ["PATH"]})
    c, _ = ns.echo(options=["-Gsome-string"])
    d, _ = ns.echo(options=["-gmyident"])
    assert len({a["setup"], b["setup"], c["setup"], d["setup"]}) == 4
    assert ns.echo(options=["-gmyident"])[0]["setup"] == d["setup"]


def test_concurrent_calls(ns):
    ns.echo()  # a server first, so that the calls race on it
    calls = [subprocess.Popen(ns.argv("exit", str(n)), cwd=ns.tmp) for n in range(12)]
    assert [c.wait(DEADLINE) for c in calls] == list(range(12))


def test_a_client_killed_mid_call_takes_the_executor_with_it(ns):
    client = subprocess.Popen(ns.argv("sleep"), stdout=subprocess.PIPE, text=True, cwd=ns.tmp)
    executor, server = map(int, client.stdout.readline().split())
    client.kill()
    client.wait()
    assert wait_for(lambda: not alive(executor))
    assert alive(server)
    assert wait_for(lambda: not zombie_children(server))
    assert ns.run("exit", "5").returncode == 5


def test_a_killed_server_is_replaced_by_the_next_call(ns):
    first, _ = ns.echo()
    os.kill(first["server"], signal.SIGKILL)
    assert wait_for(lambda: not alive(first["server"]))
    second, _ = ns.echo()
    assert second["setup"] != first["setup"]


def test_nothing_is_left_once_the_socket_is_gone(ns):
    ns.echo()
    ns.run("exit", "0", options=["--kill"])
    assert wait_for(lambda: not [p for p in ns.members() if alive(p)])


def test_standalone_without_the_client_runs_the_script_once(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PREFORK_INTERP"}
    done = subprocess.run([sys.executable, str(script), "exit", "7"], env=env, timeout=DEADLINE,
                          check=False)
    assert done.returncode == 7
