"""Run one recorded kit case inside a view like the recorder's (run as root in its own mount namespace).

    unshare -m --propagation private python3 viewdrive.py JOB.json RESULT.json

The view: the host's /usr with the kit layer over it (overlayfs), /bin /sbin
/lib as merged-usr links, a fresh /etc (passwd, group, rc.common, the case's
config and init scripts), a fresh /tmp with /var -> /tmp, /dev and /proc, and
the test's Python prefix bound at its own path so the daemon has cffi. For
group procd a bus and the daemon run inside the view on
/var/run/ubus/ubus.sock. Each command runs chrooted with exactly the base
environment plus the case's (and KITREC_DIR, which only the recording ubus
wrapper reads), stdin /dev/null, cwd /.
"""

import fcntl
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "TERM": "dumb"}
SOCKET = "/var/run/ubus/ubus.sock"
STEP_TIMEOUT = 120
SETTLE_QUIET = 0.5  # seconds the verbose list must stay the same
SETTLE_DEADLINE = 30


def sh(*argv):
    subprocess.run(argv, check=True)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    os.chmod(path, mode)


def build_view(job):
    work, layer = job["work"], job["layer"]
    root = os.path.join(work, "root")
    os.makedirs(root)
    for d in ("usr", "etc", "tmp", "dev", "proc", "root", "kitrec"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for name in ("bin", "sbin", "lib", "lib64"):
        os.symlink("usr/" + name, os.path.join(root, name))
    os.symlink("tmp", os.path.join(root, "var"))
    os.makedirs(os.path.join(work, "up"))
    os.makedirs(os.path.join(work, "wk"))
    sh("mount", "-t", "overlay", "overlay", "-o",
       f"lowerdir={layer}/usr:/usr,upperdir={work}/up,workdir={work}/wk", f"{root}/usr")
    sh("mount", "--bind", "/dev", f"{root}/dev")
    sh("mount", "-t", "proc", "proc", f"{root}/proc")
    prefix = job.get("python_prefix")
    if prefix:
        os.makedirs(root + prefix, exist_ok=True)
        sh("mount", "--bind", "-o", "ro", prefix, root + prefix)
    etc = os.path.join(root, "etc")
    for name in ("passwd", "group", "ld.so.cache", "nsswitch.conf"):
        if os.path.exists("/etc/" + name):
            shutil.copy("/etc/" + name, os.path.join(etc, name))
    shutil.copy(os.path.join(layer, "etc", "rc.common"), os.path.join(etc, "rc.common"))
    for d in ("config", "init.d", "rc.d"):
        os.makedirs(os.path.join(etc, d))
    for d in ("lock", "run/ubus", "state"):
        os.makedirs(os.path.join(root, "tmp", d))
    case = job["case"]
    for name, text in case.get("config", {}).items():
        write(f"{etc}/config/{name}", text)
    for name, text in case.get("scripts", {}).items():
        write(f"{etc}/init.d/{name}", text, 0o755)
    for name, target in case.get("symlinks", {}).items():
        os.symlink(target, f"{etc}/init.d/{name}")
    for path, text in case.get("files", {}).items():
        write(root + path, text)
    if "snippet" in case:
        write(root + "/tmp/snippet.sh", case["snippet"])
    return root


def run(argv, env, timeout=STEP_TIMEOUT):
    full = dict(BASE_ENV)
    full.update(env)
    try:
        p = subprocess.run(argv, env=full, stdin=subprocess.DEVNULL, capture_output=True,
                           cwd="/", timeout=timeout, check=False)
    except FileNotFoundError as e:
        return {"rc": 127, "stdout": "", "stderr": str(e)}
    return {"rc": p.returncode, "stdout": p.stdout.decode("utf-8", "surrogateescape"),
            "stderr": p.stderr.decode("utf-8", "surrogateescape")}


class Daemons:
    """The bus and the daemon inside the view, stopped by pid at the end."""

    def __init__(self):
        self.procs = []

    def start(self):
        py = sys.executable
        launcher = "/usr/lib/pyprocd/pyprocd-run.py"
        old = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # procd ran as a nohup job
        try:
            with open("/tmp/.daemons.log", "ab") as log:
                self.procs.append(subprocess.Popen(
                    [py, launcher, "bus", "-s", SOCKET], stdin=subprocess.DEVNULL, stdout=log,
                    stderr=log, env=dict(BASE_ENV), cwd="/"))
                wait(lambda: os.path.exists(SOCKET))
                self.procs.append(subprocess.Popen(
                    [py, launcher, "-s", SOCKET, "--syslog", "/tmp/.nolog", "--state-file", "none",
                     "--confdir", "/etc/config"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env=dict(BASE_ENV), cwd="/"))
        finally:
            signal.signal(signal.SIGHUP, old)
        assert wait(lambda: self.call("service", "list", {}) is not None), "daemon not up"

    def call(self, obj, method, data):
        from pyprocd.bus.client import BlockingUbus

        try:
            with BlockingUbus(SOCKET, timeout=10) as bus:
                status, replies = bus.call(obj, method, data)
        except (OSError, ValueError, TimeoutError):  # not (yet) answering: no reply
            return None
        if status != 0:
            return None
        merged = {}  # a reply may come in several data messages
        for reply in replies or []:
            merged.update(reply)
        return merged

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def wait(cond, timeout=SETTLE_DEADLINE, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def locks_free():
    for path in glob.glob("/tmp/lock/procd_*.lock"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        finally:
            os.close(fd)
    return True


def settle(daemons):
    """The recorder's settle: the verbose list unchanged for a while, nothing down awaiting respawn, no lock held."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + SETTLE_DEADLINE
    while time.monotonic() < deadline:
        now = daemons.call("service", "list", {"verbose": True})
        pending = any(not inst.get("running") and "respawn" in inst
                      for svc in (now or {}).values()
                      for inst in svc.get("instances", {}).values())
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= SETTLE_QUIET and not pending and locks_free():
            return True
        time.sleep(0.05)
    return False


def _text(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def read_calls(recdir):
    calls = []
    names = [n for n in os.listdir(recdir) if n.isdigit()] if os.path.isdir(recdir) else []
    for name in sorted(names, key=int):
        d = os.path.join(recdir, name)
        argv = _text(d, "argv").split("\0")[:-1]
        rc = _text(d, "rc").strip() if os.path.exists(os.path.join(d, "rc")) else ""
        calls.append({"argv": ["ubus", *argv], "rc": int(rc) if rc else None,
                      "stdout": _text(d, "stdout"), "stderr": _text(d, "stderr")})
    return calls


def rc_d():
    out = {}
    for name in sorted(os.listdir("/etc/rc.d")):
        path = os.path.join("/etc/rc.d", name)
        out[name] = "-> " + os.readlink(path) if os.path.islink(path) else "(file)"
    return out


PID = re.compile(r'("pid": ?)(\d+)')
PLACEHOLDER = re.compile(r"<pid(\d+)>")


def normalise(steps):
    """The recorder's pid normalisation, in its order of first appearance."""
    seen = {}

    def sub(text):
        def one(m):
            return f"{m.group(1)}<pid{seen.setdefault(m.group(2), len(seen) + 1)}>"
        return PID.sub(one, text)

    for step in steps:
        for call in step.get("ubus", []):
            call["stdout"] = sub(call["stdout"])
            call["stderr"] = sub(call["stderr"])
        step["stdout"] = sub(step["stdout"])
        step["stderr"] = sub(step["stderr"])


def write_expected(recdir, calls):
    """The recorded replies, for the ubus wrapper to give back in order."""
    for i, call in enumerate(calls):
        d = os.path.join(recdir, "expect", str(i))
        os.makedirs(d)
        for name in ("stdout", "stderr"):
            # a real number for each <pidK> (normalise() maps it back)
            text = PLACEHOLDER.sub(lambda m: str(40000 + int(m.group(1))), call.get(name, ""))
            with open(os.path.join(d, name), "wb") as f:
                f.write(text.encode("utf-8", "surrogateescape"))
        with open(os.path.join(d, "rc"), "w") as f:
            f.write(str(call.get("rc") or 0))
    os.makedirs(os.path.join(recdir, "expect"), exist_ok=True)


def drive_procd(case, live):
    """live: against the bus and the daemon; else every ubus call gets the recorded reply."""
    daemons = Daemons()
    if live:
        daemons.start()
    results = []
    try:
        for n, step in enumerate(case["steps"]):
            recdir = f"/kitrec/step{n:04d}"
            os.makedirs(recdir)
            env = dict(step.get("env", {}))
            if step["kind"] == "initd":
                env["KITREC_DIR"] = recdir
                if not live:
                    write_expected(recdir, step.get("ubus", []))
            got = run(step["argv"], env)
            if live and step.get("waited_s"):
                time.sleep(step["waited_s"])
            got["settled"] = settle(daemons) if live else True
            got["ubus"] = read_calls(recdir)
            if "rc_d" in step:
                got["rc_d"] = rc_d()
            results.append(got)
    finally:
        daemons.stop()
    normalise(results)
    return results


def drive_snippet(case):
    got = run(case["argv"], case.get("env", {}))
    after = {}
    for path in case.get("after_files", []):
        try:
            with open(path, "rb") as f:
                after[path] = f.read().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            after[path] = None
    for top in case.get("after_dirs", []):
        tree = {}
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                p = os.path.join(dirpath, f)
                rel = os.path.relpath(p, top)
                if os.path.islink(p):
                    tree[rel] = "-> " + os.readlink(p)
                else:
                    with open(p, "rb") as fh:
                        tree[rel] = fh.read().decode("utf-8", "surrogateescape")
        after[top] = tree
    got["after"] = after
    return got


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    sh("mount", "--make-rprivate", "/")
    root = build_view(job)
    os.chroot(root)
    os.chdir("/")
    sys.path.insert(0, "/usr/lib/pyprocd")
    if job["group"] == "procd":
        result = {"steps": drive_procd(job["case"], job.get("mode") != "recorded")}
    else:
        result = drive_snippet(job["case"])
    os.write(int(sys.argv[2]), json.dumps(result).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
