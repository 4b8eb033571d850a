"""Replaying delta files happens inside the daemon, which must not import `re`."""

import subprocess
import sys

CODE = """
import sys
from pyprocd.daemon.settings import load_package
pkg = load_package(sys.argv[1], "pyprocd", savedir=sys.argv[2])
sec = pkg.section("s")
print(sec.option("l").value, [s.name for s in pkg.sections], sorted({"re", "_sre"} & set(sys.modules)))
"""


def test_indexed_delete_and_reorder_deltas_do_not_import_re(tmp_path):
    conf, save = tmp_path / "conf", tmp_path / "save"
    conf.mkdir()
    save.mkdir()
    (conf / "pyprocd").write_text("config t 'first'\nconfig t 's'\n\tlist l 'a'\n\tlist l 'b'\n")
    (save / "pyprocd").write_text("-pyprocd.s.l='0'\n^pyprocd.s='0'\n")
    out = subprocess.run([sys.executable, "-S", "-c", CODE, str(conf), str(save)],
                         capture_output=True, text=True, check=False,
                         env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout == "['b'] ['s', 'first'] []\n", out.stderr
