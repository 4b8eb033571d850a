"""A root process applies only delta files that only root could have written.

libuci replays every `<dir>/<pkg>` of its delta path (default /tmp/.uci),
whoever owns it: a local user who creates /tmp/.uci first can write
`pyprocd.evil.command=...` and the daemon, root, runs it at the next reload.
As root, pyprocd ignores (and logs) a save directory or delta file that is
not owned by root, is writable by group or others, or is a symlink; the same
holds for the conf2dir override file (/var/run/uci/<pkg>), which replaces
the config file.
"""

import os

import pytest

from pyprocd.daemon import settings
from pyprocd.uci.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks apply to root only")

NOBODY = 65534
CONFIG = "\nconfig pyprocd 'main'\n\toption socket '/good'\n"
EVIL = "pyprocd.main.socket='/evil'\npyprocd.evil=service\npyprocd.evil.command='/bin/sh -c id'\n"


@pytest.fixture
def dirs(tmp_path):
    conf, save = tmp_path / "conf", tmp_path / "save"
    conf.mkdir()
    (conf / "pyprocd").write_text(CONFIG)
    save.mkdir(mode=0o755)
    save.chmod(0o755)
    return conf, save


def load(conf, save, warnings, conf2dir=""):
    return Store(confdir=str(conf), conf2dir=conf2dir, savedir=str(save),
                 warn=warnings.append).load("pyprocd")


def socket_of(pkg):
    return pkg.section("main").option("socket").value


def test_a_root_owned_delta_file_applies(dirs):
    conf, save = dirs
    (save / "pyprocd").write_text("pyprocd.main.socket='/changed'\n")
    warnings = []
    assert socket_of(load(conf, save, warnings)) == "/changed"
    assert warnings == []


def test_a_save_directory_owned_by_another_user_is_ignored(dirs):
    conf, save = dirs
    (save / "pyprocd").write_text(EVIL)
    os.chown(save, NOBODY, NOBODY)
    warnings = []
    pkg = load(conf, save, warnings)
    assert socket_of(pkg) == "/good" and pkg.section("evil") is None
    assert len(warnings) == 1 and str(save) in warnings[0] and "owned by uid 65534" in warnings[0]


def test_a_delta_file_owned_by_another_user_is_ignored(dirs):
    conf, save = dirs
    (save / "pyprocd").write_text(EVIL)
    os.chown(save / "pyprocd", NOBODY, NOBODY)
    warnings = []
    pkg = load(conf, save, warnings)
    assert socket_of(pkg) == "/good" and pkg.section("evil") is None
    assert len(warnings) == 1 and str(save / "pyprocd") in warnings[0]


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o1777])
def test_a_save_directory_writable_by_others_is_ignored(dirs, mode):
    conf, save = dirs
    (save / "pyprocd").write_text(EVIL)
    save.chmod(mode)
    warnings = []
    assert socket_of(load(conf, save, warnings)) == "/good"
    assert len(warnings) == 1 and "writable by group or others" in warnings[0]


def test_a_delta_file_writable_by_others_is_ignored(dirs):
    conf, save = dirs
    (save / "pyprocd").write_text(EVIL)
    (save / "pyprocd").chmod(0o666)
    warnings = []
    assert socket_of(load(conf, save, warnings)) == "/good"
    assert len(warnings) == 1


def test_symlinks_are_not_followed(dirs, tmp_path):
    conf, save = dirs
    real = tmp_path / "real"
    real.mkdir()
    (real / "pyprocd").write_text(EVIL)
    save.rmdir()
    save.symlink_to(real)  # the directory is a link
    warnings = []
    assert socket_of(load(conf, save, warnings)) == "/good"
    assert len(warnings) == 1
    save.unlink()
    save.mkdir()
    (save / "pyprocd").symlink_to(real / "pyprocd")  # the file is a link
    warnings = []
    assert socket_of(load(conf, save, warnings)) == "/good"
    assert len(warnings) == 1


def test_an_untrusted_override_file_is_ignored(dirs, tmp_path):
    conf, save = dirs
    conf2 = tmp_path / "conf2"
    conf2.mkdir()
    (conf2 / "pyprocd").write_text("config pyprocd 'main'\n\toption socket '/evil'\n")
    os.chown(conf2 / "pyprocd", NOBODY, NOBODY)
    warnings = []
    assert socket_of(load(conf, save, warnings, str(conf2))) == "/good"
    assert len(warnings) == 1 and str(conf2 / "pyprocd") in warnings[0]
    os.chown(conf2 / "pyprocd", 0, 0)
    assert socket_of(load(conf, save, [], str(conf2))) == "/evil"  # root's own override


def test_the_daemon_never_declares_a_service_from_an_untrusted_delta(dirs):
    conf, save = dirs
    (conf / "pyprocd").write_text(CONFIG + "\nconfig service 'ok'\n\toption command '/bin/true'\n")
    (save / "pyprocd").write_text(EVIL)
    os.chown(save / "pyprocd", NOBODY, NOBODY)
    logged = []
    services = settings.declared_services(str(conf), savedir=str(save),
                                          log=lambda message, priority=None: logged.append(message))
    assert list(services) == ["ok"]
    assert any(str(save / "pyprocd") in line for line in logged)
