"""json_script semantics (procd spec §9.2) and trigger matching."""

from pyprocd.core.triggers import Script, event_matches, parse_triggers, substitute


def run(block, variables):
    commands, errors = [], []
    Script(variables, lambda name, args: commands.append([name] + args), errors.append).run(block)
    return commands, errors


def test_if_eq_then_and_else():
    script = ["if", ["eq", "package", "dhcp"], ["run_script", "yes"], ["run_script", "no"]]
    assert run(script, {"package": "dhcp"})[0] == [["run_script", "yes"]]
    assert run(script, {"package": "network"})[0] == [["run_script", "no"]]
    # a missing variable makes eq false
    assert run(script, {})[0] == [["run_script", "no"]]


def test_eq_with_list_regex_has():
    assert run(["if", ["eq", "p", ["a", "b"]], ["x"]], {"p": "b"})[0] == [["x"]]
    assert run(["if", ["regex", "i", "^wan6?$"], ["x"]], {"i": "wan6"})[0] == [["x"]]
    assert run(["if", ["regex", "i", ["^lan", "^wan"]], ["x"]], {"i": "guest"})[0] == []
    assert run(["if", ["has", ["a", "b"]], ["x"]], {"b": "1"})[0] == [["x"]]
    assert run(["if", ["has", "a"], ["x"]], {"b": "1"})[0] == []


def test_and_or_not():
    cond = ["and", ["eq", "a", "1"], ["or", ["eq", "b", "2"], ["not", ["has", "c"]]]]
    assert run(["if", cond, ["x"]], {"a": "1", "c": "z"})[0] == []
    assert run(["if", cond, ["x"]], {"a": "1"})[0] == [["x"]]
    assert run(["if", cond, ["x"]], {"a": "1", "b": "2", "c": "z"})[0] == [["x"]]


def test_isdir_with_substitution(tmp_path):
    (tmp_path / "d").mkdir()
    script = ["if", ["isdir", str(tmp_path) + "/%name%"], ["x"], ["y"]]
    assert run(script, {"name": "d"})[0] == [["x"]]
    assert run(script, {"name": "missing"})[0] == [["y"]]


def test_case_and_return():
    script = [
        ["case", "action", {"add": ["run_script", "added"], "remove": [["return"]]}],
        ["run_script", "after"],
    ]
    assert run(script, {"action": "add"})[0] == [["run_script", "added"], ["run_script", "after"]]
    assert run(script, {"action": "remove"})[0] == []
    assert run(script, {})[0] == [["run_script", "after"]]


def test_substitution():
    v = {"interface": "wan", "n": "5"}
    assert substitute("/etc/init.d/x %interface%", v) == "/etc/init.d/x wan"
    assert substitute("100%%", v) == "100%"
    assert substitute("%unknown%-%n%", v) == "-5"
    assert run(["run_script", "/bin/echo", "%interface%", 7], v)[0] == [
        ["run_script", "/bin/echo", "wan", 7]]


def test_only_string_variables_are_visible():
    assert run(["if", ["has", "n"], ["x"]], {"s": "1"})[0] == []
    # the engine passes only top-level strings; Script sees what it is given
    assert run(["if", ["eq", "s", "1"], ["x"]], {"s": "1"})[0] == [["x"]]


def test_malformed_condition_skips_both_branches():
    commands, errors = run(["if", ["bogus", "a"], ["x"], ["y"]], {"a": "1"})
    assert commands == [] and errors
    commands, errors = run(["if", ["and", ["eq", "a", "1"], "junk"], ["x"], ["y"]], {"a": "1"})
    assert commands == [] and errors
    # a non-array "then" makes the if a no-op, without an error
    assert run(["if", ["eq", "a", "1"], "x"], {"a": "1"}) == ([], [])


def test_nested_blocks():
    script = [[["run_script", "a"]], ["run_script", "b"]]
    assert run(script, {})[0] == [["run_script", "a"], ["run_script", "b"]]


def test_event_matching():
    assert event_matches("interface.*", "interface.update")
    assert event_matches("interface.*", "interface.down")
    assert not event_matches("interface.*", "network.interface")
    assert event_matches("config.change", "config.change")
    assert not event_matches("config.change", "config.changed")


def test_parse_triggers_skips_malformed():
    parsed = parse_triggers([
        ["config.change", ["run_script", "a"], 1000],
        ["config.change", ["run_script", "b"]],
        "junk", ["only-type"], [5, []], ["t", "not-a-script"],
    ])
    assert [(t.type, t.delay_ms) for t in parsed] == [("config.change", 1000), ("config.change", 1)]
