"""Live re-exec: same daemon pid, same instance pids, no line of output lost."""

import os
import re
import signal
import sys

from pyprocd.daemon.survival import REEXEC_SIGNAL
from tests.daemon.lifecycle_helpers import Mini, wait_for

LINES = 3000
# Writes "<n>:x" every millisecond, each line in two writes 1 ms apart, so
# that the daemon nearly always holds a partial line when it re-execs.
WRITER = (
    "import sys, time\n"
    f"for n in range({LINES}):\n"
    "    sys.stdout.write(f'{n}:'); sys.stdout.flush()\n"
    "    time.sleep(0.001)\n"
    "    sys.stdout.write('x\\n'); sys.stdout.flush()\n"
)


def _writer_lines(mini, pid):
    found = []
    pattern = re.compile(rf"^[^:]*\[{pid}\]: (.*)$")
    for line in mini.lines():
        m = pattern.match(line)
        if m:
            found.append(m.group(1))
    return found


def test_reexec_keeps_pids_and_every_line(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    daemon = mini.start()
    service = {"name": "chatty", "instances": {
        "writer": {"command": [sys.executable, "-c", WRITER], "stdout": True},
        **{f"idle{n}": {"command": ["sleep", "1000"]} for n in range(5)}}}
    assert mini.call("set", service)[0] == 0
    pids = wait_for(lambda: (p := mini.pids("chatty")) and all(p.values()) and p,
                    what="instances running")
    writer = pids["writer"]
    wait_for(lambda: len(_writer_lines(mini, writer)) > 200, what="first output")

    # 1: through the control method (the daemon's `service reexec`).
    status, reply = mini.call("reexec", {})
    assert status == 0 and reply == {"pid": daemon}
    wait_for(lambda: any("re-exec done" in line for line in mini.lines()), what="re-exec 1")
    assert mini.call("_pid")[1]["pid"] == daemon
    assert mini.pids("chatty") == pids
    seen = len(_writer_lines(mini, writer))

    # 2: through the signal, while the writer keeps writing.
    wait_for(lambda: len(_writer_lines(mini, writer)) > seen + 200, what="more output")
    os.kill(daemon, REEXEC_SIGNAL)
    wait_for(lambda: sum("re-exec done" in line for line in mini.lines()) == 2,
             what="re-exec 2")
    assert mini.pids("chatty") == pids

    # The writer ends by itself; every line arrives, whole and in order.
    wait_for(lambda: not mini.instances("chatty")["writer"]["running"], what="writer exit")
    wait_for(lambda: len(_writer_lines(mini, writer)) >= LINES, what="all lines logged")
    assert _writer_lines(mini, writer) == [f"{n}:x" for n in range(LINES)]
    # Its exit status was still collected as our child: exit code 0.
    assert mini.instances("chatty")["writer"]["exit_code"] == 0

    assert os.waitstatus_to_exitcode(mini.stop()) == 0
    assert not mini.pidfile.exists()


def test_reexec_keeps_the_pidfile_lock(procs, tmp_path):
    from pyprocd.daemon.pidfile import read_pidfile

    mini = Mini(procs, tmp_path)
    daemon = mini.start()
    os.kill(daemon, REEXEC_SIGNAL)
    wait_for(lambda: any("re-exec done" in line for line in mini.lines()), what="re-exec")
    assert read_pidfile(str(mini.pidfile)) == daemon
    os.kill(daemon, signal.SIGTERM)
    procs.reap(daemon)
    assert not mini.pidfile.exists()


def test_sigterm_racing_a_reexec_still_stops_cleanly(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    daemon = mini.start()
    assert mini.call("set", {"name": "s", "instances": {
        "a": {"command": ["sleep", "1000"]}}})[0] == 0
    pid = wait_for(lambda: mini.pids("s")["a"], what="instance running")
    # Both land in the same loop wake-up or around the exec: either way the
    # SIGTERM is neither lost nor fatal, and it stops the instance.
    os.kill(daemon, REEXEC_SIGNAL)
    os.kill(daemon, signal.SIGTERM)
    assert os.waitstatus_to_exitcode(procs.reap(daemon)) == 0
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="instance stopped")
    assert not mini.pidfile.exists()


def test_instances_started_after_reexec_get_the_original_environment(procs, tmp_path):
    mini = Mini(procs, tmp_path)
    # A C locale: CPython then adds LC_CTYPE to its own os.environ (PEP 538);
    # neither that nor the handed-over fd's variable may reach instances.
    plain = {k: v for k, v in os.environ.items()
             if k not in ("LC_ALL", "LC_CTYPE", "LANG", "PYTHONCOERCECLOCALE")}
    daemon = mini.start(env=plain)

    def env_of(name):
        assert mini.call("add", {"name": "env", "instances": {
            name: {"command": ["/bin/sh", "-c", "env; echo END"], "stdout": True}}})[0] == 0

        def exited_pid():
            exits = mini.instances("env", verbose=True)[name].get("exits")
            return exits and exits[-1]["pid"]

        prefix = f"sh[{wait_for(exited_pid, what=f'{name} ran')}]: "
        wait_for(lambda: f"{prefix}END" in mini.lines(), what="all its output")
        return sorted(line[len(prefix):] for line in mini.lines() if line.startswith(prefix))

    before = env_of("before")
    os.kill(daemon, REEXEC_SIGNAL)
    wait_for(lambda: any("re-exec done" in line for line in mini.lines()), what="re-exec")
    after = env_of("after")
    assert not any(v.startswith("PYPROCD_REEXEC_FD=") for v in after)
    assert after == before
    # Nor the signal mask held over the exec.
    assert mini.call("add", {"name": "env", "instances": {
        "mask": {"command": ["sleep", "1000"]}}})[0] == 0
    pid = wait_for(lambda: mini.instances("env")["mask"].get("pid"), what="started")

    def status_after_exec():
        # Between fork and exec the child blocks every signal on purpose;
        # the mask that matters is the one the program starts with.
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
        return "Name:\tsleep\n" in text and text

    assert "SigBlk:\t0000000000000000\n" in wait_for(status_after_exec, what="sleep exec'd")
    assert os.waitstatus_to_exitcode(mini.stop()) == 0
