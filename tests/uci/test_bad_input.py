"""Malformed configuration: libuci's error with line and byte, never a traceback."""

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from pyprocd.uci import cli
from pyprocd.uci.model import UciError
from pyprocd.uci.parser import parse_package

PIECES = ["config", "option", "list", "package", "c", "o", "l", "p", " ", "\t", "\n", "\r\n",
          "'", '"', "\\", "#", ";", "t", "a", "x", "1", "=", ".", "@", "-", "é", "\x00"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.booleans())
def test_parser_fails_only_with_uci_errors(pieces, strict):
    text = "".join(pieces)
    errors = []
    try:
        parse_package(text, "p", strict=strict, on_error=errors.append)
    except UciError as e:
        assert strict and e.reason and e.line >= 0 and e.byte >= 0
    for e in errors:
        assert e.reason and e.line >= 0 and e.byte >= 0


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_cli_on_arbitrary_bytes(tmp_path_factory, data):
    conf = tmp_path_factory.mktemp("conf")
    (conf / "p").write_bytes(data)
    for command in (["show", "p"], ["export", "p"], ["-S", "show"], ["set", "p.s=t"]):
        out, err = io.BytesIO(), io.BytesIO()
        code = cli.main(["-c", str(conf), "-t", str(conf / "save")] + command, stdout=out,
                        stderr=err, default_savedir=str(conf / "tmp"), default_conf2dir="")
        assert code in (0, 1)
        assert b"Traceback" not in err.getvalue()
        if code == 1:
            assert err.getvalue().startswith(b"uci: ")
