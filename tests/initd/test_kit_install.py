"""`pyprocd kit install --root DIR`: the router layout, commands that run the copy inside DIR."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")

LAYOUT = ["etc/rc.common", "lib/functions.sh", "lib/functions/procd.sh", "lib/config/uci.sh",
          "usr/share/libubox/jshn.sh", "usr/bin/jshn", "usr/bin/ubus", "sbin/uci",
          "sbin/validate_data", "usr/lib/pyprocd/pyprocd-run.py",
          "usr/lib/pyprocd/pyprocd/initd/jshn.py"]


def install(root, *extra):
    return subprocess.run([sys.executable, "-m", "pyprocd", "kit", "install", "--root", str(root),
                           "--python", sys.executable, *extra],
                          env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True,
                          check=False, timeout=60)


def test_the_kit_is_laid_out_as_on_a_router(tmp_path):
    p = install(tmp_path)
    assert p.returncode == 0, p.stderr
    for rel in LAYOUT:
        assert (tmp_path / rel).is_file(), rel
    assert os.access(tmp_path / "usr/bin/jshn", os.X_OK)
    assert os.access(tmp_path / "sbin/uci", os.X_OK)


def test_the_commands_run_the_copy_inside_the_tree_without_the_checkout(tmp_path):
    assert install(tmp_path).returncode == 0
    # no PYTHONPATH: the command finds pyprocd from its own path
    env = {"PATH": "/usr/bin:/bin", "K_J_V": "a", "J_V_a": "1", "T_J_V_a": "int"}
    p = subprocess.run([str(tmp_path / "usr/bin/jshn"), "-w"], env=env, capture_output=True,
                       text=True, check=False, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, '{ "a": 1 }\n', "")
    p = subprocess.run([str(tmp_path / "sbin/uci"), "-c", str(tmp_path), "get", "x.y"],
                       env=env, capture_output=True, text=True, check=False, timeout=60)
    # named by the path it was called by, like OpenWrt's uci
    assert (p.returncode, p.stderr) == (1, f"{tmp_path}/sbin/uci: Entry not found\n")


def test_a_merged_usr_tree_gets_the_commands_through_its_links(tmp_path):
    (tmp_path / "usr" / "sbin").mkdir(parents=True)
    (tmp_path / "usr" / "lib").mkdir()
    os.symlink("usr/sbin", tmp_path / "sbin")
    os.symlink("usr/lib", tmp_path / "lib")
    assert install(tmp_path).returncode == 0
    assert (tmp_path / "usr/sbin/uci").is_file()
    assert (tmp_path / "usr/lib/functions/procd.sh").is_file()
    p = subprocess.run([str(tmp_path / "sbin/validate_data"), "port", "80"], capture_output=True,
                       check=False, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 0


def test_usage_without_a_root(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pyprocd", "kit", "install"],
                       env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True,
                       check=False, timeout=60)
    assert (p.returncode, p.stderr) == (2, "usage: pyprocd kit install --root DIR [--python INTERPRETER]\n")
