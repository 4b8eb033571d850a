"""UCI behaviour beyond the recorded vectors, checked against the format spec's examples."""

import io
import os
import stat

import pytest

from pyprocd.uci import cli
from pyprocd.uci.model import UciError
from pyprocd.uci.parser import parse_package


def parse(text, strict=True):
    return parse_package(text, "p", strict=strict, on_error=lambda e: None)


def values(text, strict=True):
    pkg = parse(text, strict)
    return {(s.name, o.name): o.value for s in pkg.sections for o in s.options}


class Uci:
    def __init__(self, tmp_path):
        self.conf = tmp_path / "conf"
        self.save = tmp_path / "save"
        self.tmp = tmp_path
        self.conf.mkdir()

    def __call__(self, *args, stdin=b""):
        out, err = io.BytesIO(), io.BytesIO()
        argv = ["-c", str(self.conf), "-t", str(self.save)] + list(args)
        code = cli.main(argv, stdin=io.BytesIO(stdin), stdout=out, stderr=err,
                        default_savedir=str(self.tmp / "tmp-uci"),
                        default_conf2dir=str(self.tmp / "conf2"))
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.fixture
def uci(tmp_path):
    u = Uci(tmp_path)
    (u.conf / "cfg").write_text(
        "config t 'a'\n\toption x '1'\n\tlist l 'p'\n\tlist l 'q r'\n"
        "config t 'b'\nconfig u\n\toption z '3'\nconfig u\n")
    return u


# -- parser details (spec §4) ---------------------------------------------------------


def test_token_concatenation_and_escapes():
    v = values("config t a\n option a ab'c d'e\n option b 'it'\\''s'\n option c \"say \\\"hi\\\"\"\n"
               " option d a\\ b\n option e \\t\\n\n")
    assert v[("a", "a")] == "abc de"
    assert v[("a", "b")] == "it's"
    assert v[("a", "c")] == 'say "hi"'
    assert v[("a", "d")] == "a b"
    assert v[("a", "e")] == "tn"


def test_semicolon_rules():
    assert values("config t a\noption z 3 ; option w 4\n") == {("a", "z"): "3", ("a", "w"): "4"}
    assert values("config t a\noption q '5'; option r 6\n") == {("a", "q"): "5", ("a", "r"): "6"}
    # `;` right after an unquoted token: the rest of the line is lost
    assert values("config t a\noption x 1; option y 2\n") == {("a", "x"): "1"}
    assert values("config t a;option x 1\n") == {}
    with pytest.raises(UciError) as e:
        parse("config t a\noption x ;option y 2\n")
    assert e.value.reason == "too many arguments"


def test_continuation_rules():
    assert values('config t a\noption x "abc\\\n   def"\n') == {("a", "x"): "abc   def"}
    assert values("config t a\noption y ghi\\\njkl\n") == {("a", "y"): "ghijkl"}
    with pytest.raises(UciError) as e:
        parse("config t a\noption y ghi\\\n jkl\n")
    assert e.value.reason == "too many arguments"


def test_keyword_errors():
    for text, reason in [
        ("conf t a\n", "invalid command"),
        ("Config t a\n", "invalid command"),
        ("config", "config without name"),
        ("config t a\nlist", "option without name"),
        ("config \n", "insufficient arguments"),
        ("config 'bad type'\n", "invalid character in type field"),
        ("package 'a.b'\n", "invalid character in name field"),
        ('config t a\noption x "open\n', 'EOF with unterminated "'),
    ]:
        with pytest.raises(UciError) as e:
            parse(text)
        assert e.value.reason == reason, text


def test_error_line_counts_only_terminated_lines():
    with pytest.raises(UciError) as e:
        parse("config t a\n\tbogus")
    assert (e.value.line, e.value.byte) == (1, 1)


def test_non_strict_merges_type_change_and_swallows_extra_token():
    pkg = parse("config t1 a\noption x 1\nconfig t2 a\noption y 2 extra\n", strict=False)
    assert [(s.type, s.name) for s in pkg.sections] == [("t2", "a")]
    assert values("config t a\noption x ;option y 2\n", strict=False) == {}


def test_anonymous_names_count_every_section():
    pkg = parse("config t 'a'\nconfig t 'b'\nconfig u\nconfig rule\n")
    assert [s.name for s in pkg.sections] == ["a", "b", "cfg03b61a", "cfg0492bd"]


def test_list_and_option_interplay():
    v = values("config t a\noption s old\nlist s new\nlist e ''\noption e2 ''\n")
    assert v == {("a", "s"): ["old", "new"], ("a", "e"): [""]}


# -- CLI ---------------------------------------------------------------------------


def test_extended_addressing(uci):
    assert uci("get", "cfg.@t[0].x") == (0, "1\n", "")
    assert uci("get", "cfg.@t[-1]") == (0, "t\n", "")
    assert uci("get", "cfg.@u[-2].z") == (0, "3\n", "")
    assert uci("get", "cfg.@[2].z") == (0, "3\n", "")
    assert uci("get", "cfg.@t[].x") == (0, "1\n", "")
    assert uci("show", "cfg.@u[0]") == (0, "cfg.cfg03b61a=u\ncfg.cfg03b61a.z='3'\n", "")
    assert uci("get", "cfg.@u[5]") == (1, "", "uci: Entry not found\n")
    assert uci("get", "cfg.@u[x]") == (1, "", "uci: Invalid argument\n")
    assert uci("get", "cfg.@u[0]junk") == (1, "", "uci: Invalid argument\n")


def test_get_list_quoting_and_delimiter(uci):
    assert uci("get", "cfg.a.l") == (0, "p 'q r'\n", "")
    assert uci("-d", ",", "get", "cfg.a.l") == (0, "p,'q r'\n", "")
    assert uci("-d", "|", "show", "cfg.a.l") == (0, "cfg.a.l='p'|'q r'\n", "")


def test_exit_codes(uci):
    assert uci("get", "cfg.a.b.c") == (1, "", "uci: Parse error\n")
    assert uci("get", "cfg.a.x=1") == (1, "", "")
    assert uci("add", "nosuch", "t") == (3, "", "uci: Entry not found\n")
    assert uci("-q", "get", "cfg.nosuch") == (1, "", "")
    code, _out, err = uci("frobnicate")
    assert code == 255 and err.startswith("Usage: uci [<options>] <command> [<arguments>]\n")
    assert uci("get")[0] == 255
    assert uci("help")[0] == 0
    assert uci()[0] == 0
    assert uci("-z", "show")[0] == 0  # invalid option: usage, exit 0


def test_show_all_continues_after_a_broken_package(uci):
    (uci.conf / "broken").write_text("config t 'x\n")
    code, out, err = uci("show")
    assert code == 0
    assert "uci: Parse error (EOF with unterminated ') at line 1, byte 12\n" == err
    assert out.startswith("cfg.a=t\n")


def test_reorder_negative_goes_first_and_noop_records_nothing(uci):
    assert uci("reorder", "cfg.a=0") == (0, "", "")
    assert not (uci.save / "cfg").exists()
    assert uci("reorder", "cfg.@u[-1]=-1")[0] == 0
    assert (uci.save / "cfg").read_text() == "^cfg.cfg04b61a='-1'\n"
    assert uci("show", "cfg")[1].startswith("cfg.@u[0]=u\n")


def test_set_type_change_of_anonymous_section(uci):
    uci("set", "cfg.@u[0]=longer")  # different length: becomes named
    uci("set", "cfg.@u[0]=v")      # same length as 'u': stays anonymous
    uci("commit", "cfg")
    text = (uci.conf / "cfg").read_text()
    assert "\nconfig longer 'cfg03b61a'\n" in text
    assert "\nconfig v\n" in text


def test_delete_list_index_and_del_list_all(uci):
    uci("add_list", "cfg.a.l=p")
    assert uci("del_list", "cfg.a.l=p") == (0, "", "")
    assert uci("get", "cfg.a.l") == (0, "'q r'\n", "")
    assert uci("delete", "cfg.a.l=5") == (0, "", "")  # out of range: no-op
    assert uci("delete", "cfg.a.l=0") == (0, "", "")
    assert uci("show", "cfg.a.l") == (0, "cfg.a.l=\n", "")
    uci("commit")
    assert "list l" not in (uci.conf / "cfg").read_text()


def test_delta_path_order_and_tmp_uci_always_read(uci, tmp_path):
    (tmp_path / "tmp-uci").mkdir()
    (tmp_path / "tmp-uci" / "cfg").write_text("cfg.a.x='from-tmp'\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "cfg").write_text("cfg.a.x='from-extra'\n")
    uci("set", "cfg.a.y=mine")
    # -t then -p: [tmp-uci, extra, save]; /tmp/.uci always comes along
    _code, out, _ = uci("-p", str(extra), "changes", "cfg")
    assert out == "cfg.a.x='from-tmp'\ncfg.a.x='from-extra'\ncfg.a.y='mine'\n"
    assert uci("-p", str(extra), "get", "cfg.a.x") == (0, "from-extra\n", "")
    assert uci("get", "cfg.a.x") == (0, "from-tmp\n", "")
    # commit truncates only the savedir file
    uci("commit", "cfg")
    assert (uci.save / "cfg").read_text() == ""
    assert (tmp_path / "tmp-uci" / "cfg").read_text() == "cfg.a.x='from-tmp'\n"


def test_conf2dir_overrides_and_receives_commit(uci, tmp_path):
    conf2 = tmp_path / "conf2"
    conf2.mkdir()
    (conf2 / "cfg").write_text("config t 'over'\n")
    assert uci("show", "cfg") == (0, "cfg.over=t\n", "")
    uci("set", "cfg.over.k=v")
    uci("commit", "cfg")
    assert (conf2 / "cfg").read_text() == "\nconfig t 'over'\n\toption k 'v'\n\n"
    assert "over" not in (uci.conf / "cfg").read_text()


def test_commit_keeps_mode_and_symlink(uci, tmp_path):
    real = tmp_path / "real"
    real.write_text("config t 'a'\n")
    real.chmod(0o640)
    (uci.conf / "link").symlink_to(real)
    uci("set", "link.a.x=1")
    assert uci("commit", "link") == (0, "", "")
    assert (uci.conf / "link").is_symlink()
    assert real.read_text() == "\nconfig t 'a'\n\toption x '1'\n\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_savedir_not_a_directory_is_io_error(uci):
    uci.save.write_text("")
    assert uci("set", "cfg.a.x=2") == (1, "", "uci: I/O error\n")


def test_revert_section_via_extended_name(uci):
    uci("set", "cfg.@u[0].z=9")
    uci("set", "cfg.a.x=9")
    assert uci("revert", "cfg.@u[0]") == (0, "", "")
    assert (uci.save / "cfg").read_text() == "cfg.a.x='9'\n"
    assert uci("revert", "nosuch") == (1, "", "uci: Entry not found\n")


def test_import_overwrite_and_merge(uci):
    stream = b"package ignored\nconfig t 'n'\n\toption k 'v'\nconfig w\n\tlist l 'x'\n"
    assert uci("import", "newpkg", stdin=stream) == (0, "", "")
    assert (uci.conf / "newpkg").read_text() == \
        "\nconfig t 'n'\n\toption k 'v'\n\nconfig w\n\tlist l 'x'\n\n"
    assert stat.S_IMODE((uci.conf / "newpkg").stat().st_mode) == 0o600
    assert uci("-m", "import", "cfg", stdin=b"config t 'a'\n\toption x 'm'\nconfig w\n") == (0, "", "")
    assert (uci.save / "cfg").read_text() == "cfg.a.x='m'\n+cfg.cfg05b61c='w'\n"
    two = b"package one\nconfig t 'a'\npackage two\nconfig t 'b'\n"
    assert uci("import", stdin=two) == (0, "", "")
    assert (uci.conf / "one").exists() and (uci.conf / "two").exists()
    assert uci("import", stdin=b"config t 'a'\n")[0] == 1


def test_batch(uci):
    script = b"set cfg.a.x=5\n# comment\nadd_list cfg.a.l='s t'\nbogus\ncommit cfg\nexit\nset cfg.a.x=6\n"
    code, _out, err = uci("batch", stdin=script)
    assert code == 0 and "Unknown command" in err
    assert uci("get", "cfg.a.x") == (0, "5\n", "")
    assert uci("get", "cfg.a.l") == (0, "p 'q r' 's t'\n", "")


def test_p_mode_commit_is_noop(uci):
    code = cli.main(["-c", str(uci.conf), "-P", str(uci.save), "set", "cfg.a.x=P"],
                    stdout=io.BytesIO(), stderr=io.BytesIO(),
                    default_savedir=str(uci.tmp / "t"), default_conf2dir="")
    assert code == 0
    before = (uci.conf / "cfg").read_text()
    assert cli.main(["-c", str(uci.conf), "-P", str(uci.save), "commit"], stdout=io.BytesIO(),
                    stderr=io.BytesIO(), default_savedir=str(uci.tmp / "t"),
                    default_conf2dir="") == 0
    assert (uci.conf / "cfg").read_text() == before


def test_binary_values_round_trip(uci):
    (uci.conf / "bin").write_bytes(b"config t 'a'\n\toption v '\xff\xfe caf\xc3\xa9'\n")
    uci("set", "bin.a.w=1")
    uci("commit", "bin")
    assert b"\toption v '\xff\xfe caf\xc3\xa9'\n" in (uci.conf / "bin").read_bytes()


def test_cli_subprocess_entry_point(uci):
    import subprocess
    import sys

    env = dict(os.environ, PYPROCD_UCI_SAVEDIR=str(uci.tmp / "tmp-uci"), PYPROCD_UCI_CONF2DIR="")
    result = subprocess.run([sys.executable, "-m", "pyprocd", "uci", "-c", str(uci.conf), "get",
                             "cfg.a.x"], check=False, capture_output=True, env=env, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"1\n", b"")


def test_batch_with_unterminated_quote_does_not_crash(uci):
    code, _out, err = uci("batch", stdin=b"set cfg.a.x=7\nset cfg.a.y='open\n")
    assert code == 0 and "Parse error" in err
    assert uci("get", "cfg.a.x") == (0, "7\n", "")
