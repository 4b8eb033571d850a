"""reload-config: per-package checksums remembered between runs, one config.change per change."""

import subprocess
import sys

from pyprocd.uci.reload import reload_config


def test_first_run_records_then_reports_changes(tmp_path):
    conf, md5 = tmp_path / "conf", tmp_path / "config.md5"
    save = tmp_path / "save"
    conf.mkdir()
    (conf / "a").write_text("config t 'x'\n\toption v '1'\n")
    (conf / "b").write_text("config t 'y'\n")
    (conf / "gone").write_text("config t 'z'\n")
    sent = []

    def send(type_, data):
        sent.append((type_, data))

    assert reload_config(str(conf), str(md5), send, savedir=str(save)) == []
    assert sent == [] and md5.exists()
    # only formatting changes: the rendering (uci show) is the same -> no event
    (conf / "a").write_text("\nconfig t x\n\toption v \"1\"  # same\n")
    assert reload_config(str(conf), str(md5), send, savedir=str(save)) == []
    (conf / "b").write_text("config t 'y'\n\toption new 'v'\n")
    (conf / "gone").unlink()
    (conf / "fresh").write_text("config t 'f'\n")
    assert reload_config(str(conf), str(md5), send, savedir=str(save)) == ["b", "gone"]
    assert sent == [("config.change", {"package": "b"}), ("config.change", {"package": "gone"})]
    sent.clear()
    assert reload_config(str(conf), str(md5), send, savedir=str(save)) == []
    assert sent == []


def test_uncommitted_deltas_count_like_uci_show(tmp_path):
    conf, md5, save = tmp_path / "conf", tmp_path / "md5", tmp_path / "save"
    conf.mkdir()
    save.mkdir()
    (conf / "a").write_text("config t 'x'\n")
    reload_config(str(conf), str(md5), lambda *a: None, savedir=str(save))
    (save / "a").write_text("a.x.v='2'\n")
    sent = []
    reload_config(str(conf), str(md5), lambda t, d: sent.append(d), savedir=str(save))
    assert sent == [{"package": "a"}]


def test_md5_file_uses_reload_config_format(tmp_path):
    conf, md5 = tmp_path / "conf", tmp_path / "md5"
    conf.mkdir()
    (conf / "a").write_text("")
    reload_config(str(conf), str(md5), lambda *a: None, savedir=str(tmp_path / "s"))
    # md5 of the empty `uci show` output, path as /sbin/reload_config writes it
    assert md5.read_text() == "d41d8cd98f00b204e9800998ecf8427e  /var/run/config.check/a\n"


def test_cli_dry_run_and_no_bus(tmp_path):
    conf, md5 = tmp_path / "conf", tmp_path / "md5"
    conf.mkdir()
    (conf / "a").write_text("config t 'x'\n")
    md5.write_text("0123  /var/run/config.check/a\n")
    run = [sys.executable, "-m", "pyprocd", "reload-config", "-c", str(conf), "-m", str(md5)]
    dry = subprocess.run(run + ["-n"], check=False, capture_output=True, text=True, timeout=60)
    assert (dry.returncode, dry.stdout) == (0, "a\n")
    nobus = subprocess.run(run + ["-s", str(tmp_path / "no.sock")], check=False,
                           capture_output=True, text=True, timeout=60)
    assert nobus.returncode == 1 and "reload-config:" in nobus.stderr
    assert md5.read_text() == "0123  /var/run/config.check/a\n"  # kept for the next try
