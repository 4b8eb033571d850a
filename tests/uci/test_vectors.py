"""Replays every case of the recorded `uci` vectors (real libuci output) against pyprocd.uci."""

import io
import os

import pytest

from pyprocd.uci import cli
from tests.conftest import load_vectors

VECTORS = load_vectors("uci")
PARSE_MODES = ("export", "export_n", "export_S", "show", "show_X", "show_S")


def run_uci(argv, confdir, savedir, tmp_path, stdin=b""):
    argv = [a.replace("<CONFDIR>", str(confdir)).replace("<SAVEDIR>", str(savedir)) for a in argv]
    out, err = io.BytesIO(), io.BytesIO()
    code = cli.main(argv[1:], stdin=io.BytesIO(stdin), stdout=out, stderr=err,
                    default_savedir=str(tmp_path / "tmp-uci"),
                    default_conf2dir=str(tmp_path / "var-run-uci"))

    def unplace(data):
        text = data.decode("utf-8", "surrogateescape")
        return text.replace(str(confdir), "<CONFDIR>").replace(str(savedir), "<SAVEDIR>")

    return code, unplace(out.getvalue()), unplace(err.getvalue())


def read_dir(path):
    if not path.is_dir():
        return {}
    return {p.name: p.read_bytes().decode("utf-8", "surrogateescape")
            for p in sorted(path.iterdir()) if not p.name.startswith(".")}


@pytest.mark.parametrize("case", VECTORS["parse_cases"], ids=lambda c: c["name"])
def test_parse_case(case, tmp_path):
    confdir, savedir = tmp_path / "conf", tmp_path / "save"
    confdir.mkdir()
    (confdir / case["package"]).write_bytes(case["file"].encode("utf-8", "surrogateescape"))
    for mode in PARSE_MODES:
        expected = case[mode]
        got = run_uci(expected["argv"], confdir, savedir, tmp_path)
        assert got == (expected["exit_code"], expected["stdout"], expected["stderr"]), mode


@pytest.mark.parametrize("case", VECTORS["delta_cases"], ids=lambda c: c["name"])
def test_delta_case(case, tmp_path):
    confdir, savedir = tmp_path / "conf", tmp_path / "save"
    confdir.mkdir()
    for name, content in case["initial_files"].items():
        (confdir / name).write_bytes(content.encode("utf-8", "surrogateescape"))
    for number, step in enumerate(case["steps"]):
        stdin = (step.get("stdin") or "").encode()
        got = run_uci(step["argv"], confdir, savedir, tmp_path, stdin)
        where = f"step {number}: {' '.join(step['argv'][5:])}"
        assert got == (step["exit_code"], step["stdout"], step["stderr"]), where
        assert read_dir(savedir) == step["savedir_after"], where
        assert read_dir(confdir) == step["confdir_after"], where
    # commit leaves no temporary files behind
    assert not [p for p in os.listdir(confdir) if p.startswith(".")]
