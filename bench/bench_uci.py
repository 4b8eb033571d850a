"""UCI loading: how the parse grows with the number of sections, and its memory.

A router's /etc/config may hold tens of thousands of named sections (firewall
rules, DHCP leases) and values of several hundred kB (certificates). The time
to parse N and 4N named sections is measured in the same run and reported
with its ratio (linear work gives about 4; a quadratic lookup gave about 16),
and tracemalloc's peak during a load of a file made of long values is
reported as a multiple of the file size.
"""

import os
import statistics
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from pyprocd.uci.parser import parse_package
from pyprocd.uci.store import Store


def named_sections(n):
    return "".join(f"config rule 'r{i}'\n\toption src 'lan'\n\toption dest 'wan{i}'\n"
                   for i in range(n)).encode()


def long_values(size):
    """Five options of size/5 bytes each: quoted, double-quoted, bare, multi-line, UTF-8."""
    part = size // 5
    line = "x" * 63 + "\n"
    return (f"config t 'a'\n\toption single '{'s' * part}'\n\toption double \"{'d' * part}\"\n"
            f"\toption bare {'b' * part}\n\toption lines '{line * (part // 64)}'\n"
            f"\toption utf8 '{'é€' * (part // 5)}'\n").encode()


def _seconds(fn, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_scaling(n, reps):
    small, large = named_sections(n), named_sections(4 * n)
    t_small = _seconds(lambda: parse_package(small, "p"), reps)
    t_large = _seconds(lambda: parse_package(large, "p"), reps)
    return {"sections": n, "seconds": round(t_small, 4), "sections_x4": 4 * n,
            "seconds_x4": round(t_large, 4), "ratio_x4": round(t_large / t_small, 2)}


def load_memory(size):
    data = long_values(size)
    with tempfile.TemporaryDirectory(prefix="bench-uci-") as tmp:
        conf = os.path.join(tmp, "conf")
        os.mkdir(conf)
        with open(os.path.join(conf, "p"), "wb") as f:
            f.write(data)
        store = Store(confdir=conf, conf2dir="", savedir=os.path.join(tmp, "save"))
        tracemalloc.start()
        try:
            store.load("p")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return {"file_bytes": len(data), "peak_bytes": peak,
            "peak_per_file_byte": round(peak / len(data), 2)}


def run(quick):
    n, reps = (2_000, 3) if quick else (20_000, 3)
    return {
        "parse_named_sections": parse_scaling(n, reps),
        "load_long_values": load_memory(1_000_000 if quick else 4_000_000),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2))
