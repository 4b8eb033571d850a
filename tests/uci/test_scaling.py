"""The parser and the delta replay grow linearly with the input.

A router's /etc/config can hold thousands of sections (firewall rules, DHCP
leases) and long values (certificates, scripts). Work is counted, not timed:
the number of Python line events the load executes (sys.settrace) for N and
for 4N items must grow about 4x (a quadratic path gives ~16x), and the peak
allocation (tracemalloc) stays a small multiple of the file size.
"""

import sys
import tracemalloc

from pyprocd.uci.parser import parse_package
from pyprocd.uci.store import Store

SMALL, LARGE = 250, 1000
# linear work gives LARGE/SMALL = 4; allow for constant costs, not for N^2 (16)
MAX_WORK_RATIO = 5.0


def work(fn):
    """Python line events executed by fn() — a deterministic operation count."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def ratio(make_and_run):
    return work(lambda: make_and_run(LARGE)) / work(lambda: make_and_run(SMALL))


def named_sections(n):
    return "".join(f"config rule 'r{i}'\n\toption src 'lan'\n\toption dest 'wan{i}'\n"
                   for i in range(n))


def test_named_sections_parse_linearly():
    texts = {n: named_sections(n) for n in (SMALL, LARGE)}
    r = ratio(lambda n: parse_package(texts[n], "p"))
    assert r < MAX_WORK_RATIO, f"work grew {r:.1f}x for 4x the named sections"


def test_repeated_named_sections_merge_linearly():
    # every second statement re-opens an earlier section: a lookup by name each time
    def text(n):
        return named_sections(n) + "".join(f"config rule 'r{i}'\n\toption extra '{i}'\n"
                                           for i in range(n))
    texts = {n: text(n) for n in (SMALL, LARGE)}
    r = ratio(lambda n: parse_package(texts[n], "p"))
    assert r < MAX_WORK_RATIO, f"work grew {r:.1f}x"
    pkg = parse_package(texts[SMALL], "p")
    assert len(pkg.sections) == SMALL
    assert pkg.section("r7").option("extra").value == "7"


def test_many_options_in_one_section_parse_linearly():
    def text(n):
        return "config t 'big'\n" + "".join(f"\toption o{i} '{i}'\n\tlist l{i % 7} '{i}'\n"
                                            for i in range(n))
    texts = {n: text(n) for n in (SMALL, LARGE)}
    r = ratio(lambda n: parse_package(texts[n], "p"))
    assert r < MAX_WORK_RATIO, f"work grew {r:.1f}x for 4x the options"


def test_delta_replay_is_linear(tmp_path):
    stores = {}
    for n in (SMALL, LARGE):
        conf, save = tmp_path / f"conf{n}", tmp_path / f"save{n}"
        conf.mkdir()
        save.mkdir()
        (conf / "p").write_text(named_sections(n))
        (save / "p").write_text("".join(f"p.r{i}.dest='lan{i}'\n" for i in range(n)))
        stores[n] = Store(confdir=str(conf), conf2dir="", savedir=str(save))
    r = ratio(lambda n: stores[n].load("p"))
    assert r < MAX_WORK_RATIO, f"work grew {r:.1f}x for 4x the sections and deltas"
    assert stores[SMALL].load("p").section("r3").option("dest").value == "lan3"


def test_long_multiline_value_parses_linearly():
    def text(n):
        body = "\\\n".join("abcdefghij" * 6 for _ in range(n))
        return f'config t a\n\toption cert "{body}"\n'
    texts = {n: text(n) for n in (SMALL, LARGE)}
    r = ratio(lambda n: parse_package(texts[n], "p"))
    assert r < MAX_WORK_RATIO, f"work grew {r:.1f}x for 4x the continued lines"
    assert parse_package(texts[SMALL], "p").section("a").option("cert").value == \
        "abcdefghij" * 6 * SMALL


def long_values_file(size):
    quarter = size // 4
    line = "x" * 63 + "\n"
    multiline = line * (quarter // len(line))
    return (
        "config t 'a'\n"
        f"\toption single '{'s' * quarter}'\n"
        f"\toption double \"{'d' * quarter}\"\n"
        f"\toption bare {'b' * quarter}\n"
        f"\toption lines '{multiline}'\n"
        f"\toption utf8 '{'é€' * (quarter // 8)}'\n"
    ).encode()


def test_memory_for_long_values_is_a_small_multiple_of_the_file(tmp_path):
    data = long_values_file(2_000_000)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "p").write_bytes(data)
    store = Store(confdir=str(conf), conf2dir="", savedir=str(tmp_path / "save"))
    tracemalloc.start()
    try:
        pkg = store.load("p")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pkg.section("a").option("bare").value == "b" * 500_000
    assert pkg.section("a").option("utf8").value == "é€" * 62_500
    # the file's bytes, its decoded values and one line buffer: a few times its size
    assert peak < 5 * len(data), f"peak {peak / len(data):.1f}x the file size"
