"""Pieces of the ubus CLI that the captures do not exercise."""

from pyprocd.bus import frame as F
from pyprocd.bus.client import signature_of
from pyprocd.bus.ubuscli import _signature_lines, monitor_line, parse_options


def test_options_are_permuted_like_getopt():
    opts, args = parse_options(["call", "-t5", "service", "list", "-S", "-s", "/x.sock"])
    assert (opts.timeout, opts.timeout_given, opts.simple, opts.socket) == (5, True, True, "/x.sock")
    assert args == ["call", "service", "list"]
    opts, args = parse_options(["-vS", "list", "--", "-not-an-option"])
    assert opts.verbose and opts.simple and args == ["list", "-not-an-option"]
    opts, _ = parse_options(["-t", "abc", "list"])
    assert opts.timeout == 0  # atoi
    opts, _ = parse_options(["-m", "invoke", "-m", "status", "-M", "r", "monitor"])
    assert opts.monitor_types == {1, 5} and opts.monitor_dir == "r"


def test_verbose_list_type_names():
    sig = signature_of([("m", {"s": 3, "i": 5, "b": 7, "t": 2, "a": 1, "l": 4, "d": 8, "x": 0}),
                        ("none", {})])
    assert list(_signature_lines(sig)) == [
        ('"m":{"s":"String","i":"Integer","b":"Boolean","t":"Table","a":"Array",'
         '"l":"(unknown)","d":"(unknown)","x":"(unknown)"}'),
        '"none":{}',
    ]


def test_monitor_line_format():
    inner = (F.attr_u32(F.A_STATUS, 0xFFFFFFFE) + F.attr_u32(F.A_OBJID, 0xC003D71E)
             + F.attr_u8(F.A_NO_REPLY, 1) + F.attr_str(F.A_METHOD, "x\"y"))
    body = (F.attr_u32(F.M_CLIENT, 0x31B0FF00) + F.attr_u32(F.M_PEER, 0xC003D71E)
            + F.attr_u32(F.M_SEQ, 3) + F.attr_u32(F.M_TYPE, 10) + F.attr_u8(F.M_SEND, 0)
            + F.attr(F.M_DATA, inner))
    text, msg_type, sent = monitor_line(body)
    assert (msg_type, sent) == (10, False)
    assert text == ('<- 31b0ff00 #c003d71e         notify: '
                    '{"status":-2,"objid":-1073490146,"method":"x\\"y","no_reply":true}\n')
    body = body.replace(F.attr_u32(F.M_TYPE, 10), F.attr_u32(F.M_TYPE, 42))
    assert monitor_line(body)[0].startswith("<- 31b0ff00 #c003d71e             42: {")
    assert monitor_line(b"\x00\x00") is None
