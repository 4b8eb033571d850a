"""The installed package, end to end: the one-line opt-in reaches the daemon.

From the .ipk's data tree unpacked into an empty root: `pyprocd bus` stands
in for ubusd, the daemon serves `--object pyprocd` as /etc/init.d/pyprocd
starts it next to procd, and `ubus` is the package's own `pyprocd ubus`. A
busybox ash (or dash) that sources /lib/functions/pyprocd.sh then drives a service
with procd.sh's plain `ubus call service ...` commands, while `service`
itself does not exist on that bus.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.packaging.pkg_helpers import ROOT, mkipk, posix_shell

HELPER = ROOT / "openwrt" / "files" / "lib" / "functions" / "pyprocd.sh"
DEADLINE = 60.0  # seconds; the machine may be very busy


def wait_until(condition, what):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def installed(tmp_path, built_ipk):
    package = mkipk.Package()
    needed = [f"{package.package_dir}/daemon/main.py", f"{package.package_dir}/api/service.py"]
    missing = [p for p in needed if p not in built_ipk.files()]
    if missing:
        pytest.skip(f"daemon not in the package yet: {missing}")
    root = built_ipk.install(tmp_path / "root")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(root / package.site_packages.lstrip("/"))
    return root, env


def test_helper_drives_the_installed_daemon(tmp_path, installed):
    root, env = installed
    command = [sys.executable, str(root / "usr/bin/pyprocd")]
    sock = tmp_path / "ubus.sock"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ubus").write_text(
        f'#!/bin/sh\nexec {sys.executable} {root}/usr/bin/pyprocd ubus -s {sock} "$@"\n'
    )
    (bin_dir / "ubus").chmod(0o755)
    shell_env = dict(env, PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}")

    def ubus(*args):
        return subprocess.run([str(bin_dir / "ubus"), *args], env=shell_env,
                              capture_output=True, text=True, timeout=60, check=False)

    def shell(script):
        out = subprocess.run([*posix_shell(), "-c", f'. "{HELPER}"\n{script}'], env=shell_env,
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout

    started = []
    try:
        started.append(subprocess.Popen([*command, "bus", "-s", str(sock)], env=env,
                                         cwd=tmp_path, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL))
        wait_until(sock.exists, "the bus socket")
        started.append(subprocess.Popen(
            [*command, "-s", str(sock), "--object", "pyprocd", "--syslog", str(tmp_path / "log"),
             # nothing of the host's: state file, UCI, init scripts
             "--state-file", str(tmp_path / "state.json"), "--confdir", str(tmp_path),
             "--initd-dir", str(tmp_path)],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: ubus("list", "pyprocd").returncode == 0, "the pyprocd object")
        assert ubus("call", "service", "list").returncode != 0, "no `service` on this bus"

        message = {"name": "demo", "instances": {"main": {"command": ["/bin/sleep", "300"]}}}
        shell(f"ubus call service set '{json.dumps(message)}'")
        listed = json.loads(shell("""ubus call service list '{"name": "demo"}'"""))
        instance = listed["demo"]["instances"]["main"]
        assert instance["running"] is True
        pid = instance["pid"]
        assert os.path.exists(f"/proc/{pid}")

        # What the init script's raw trigger makes procd run on reload_config
        # (procd has put the package name in for %package%).
        forwarded = ubus("call", "pyprocd", "event",
                         '{"type":"config.change","data":{"package":"demo"}}')
        assert forwarded.returncode == 0, forwarded.stderr

        shell("""ubus call service delete '{"name": "demo"}'""")
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), "the instance to stop")
        wait_until(lambda: json.loads(shell("ubus call service list '{\"name\": \"demo\"}'")
                                      or "{}") == {}, "the service to go")
    finally:
        for proc in reversed(started):  # the daemon first: it stops its instances
            proc.terminate()
            try:
                proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
