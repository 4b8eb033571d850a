"""The zygote's preparation of its heap for sharing with the services it forks."""

import json
import subprocess
import sys

PROBE = r"""
import json, sys, asyncio
from pyprocd.process import zygote
before = zygote._free_blocks_by_size()
zygote.fill_allocator_holes()
after = zygote._free_blocks_by_size()
print(json.dumps({"before": before, "after": after, "float": sys.getsizeof(0.0)}))
"""


def test_the_free_blocks_of_partly_used_pools_are_taken_before_forking():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=True, timeout=120)
    result = json.loads(done.stdout)
    before = {int(k): v for k, v in result["before"].items()}
    after = {int(k): v for k, v in result["after"].items()}
    # the allocator's statistics are read (CPython's own allocator, its report's format)
    assert 512 in before and sum(before.values()) > 0, done.stdout
    fillable = [size for size in before if size >= result["float"]]
    # what is left: the few pools the filling itself just started (16 KiB each)
    pool_blocks = {size: 2 * 16384 // size for size in fillable}
    left = {size: after[size] for size in fillable if after[size] > pool_blocks[size]}
    assert not left, (before, after)
    assert sum(after[s] * s for s in fillable) < sum(before[s] * s for s in fillable)
