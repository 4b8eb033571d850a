"""Wire codec benchmarks: the `service list` reply at 1000 instances.

The reply (100 services x 10 instances, each instance like procd's verbose
dump: command, env, respawn, limits, jail...) is encoded to blobmsg,
decoded, rendered as the `ubus call` CLI prints it, and framed/unframed as
a ubus DATA message. Baseline in the same run: json.dumps / json.loads of
the same dict (C accelerated), so the ratios say what pure-Python blobmsg
costs next to the fastest serializer the standard library has.
"""

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from pyprocd.wire import blobmsg, ubusmsg


def list_reply(services=100, instances=10):
    """A `service list {"verbose": true}` reply with services*instances instances."""
    reply = {}
    for s in range(services):
        name = f"service{s:03d}"
        inst = {}
        for i in range(instances):
            inst[f"instance{i}"] = {
                "running": True,
                "pid": 10000 + s * instances + i,
                "command": [f"/usr/sbin/{name}", "-f", "-C", f"/var/etc/{name}.conf.{i}"],
                "term_timeout": 5,
                "env": {"HOME": "/root", "LANG": "C", "INSTANCE": str(i)},
                "respawn": {"threshold": 3600, "timeout": 5, "retry": 5},
                "limits": {"nofile": "1024 4096"},
                "jail": {"name": name, "procfs": False, "sysfs": False, "ubus": True,
                         "log": True},
                "user": "nobody",
            }
        reply[name] = {
            "instances": inst,
            "triggers": [["config.change", ["if", ["eq", "package", name],
                                            ["run_script", f"/etc/init.d/{name}", "reload"]],
                          1000]],
        }
    return reply


def _rate(fn, seconds, reps):
    """Median calls per second over `reps` rounds of at least `seconds` each."""
    rates = []
    for _ in range(reps):
        calls = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            fn()
            calls += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        rates.append(calls / (now - start))
    median = statistics.median(rates)
    spread = (max(rates) - min(rates)) / median if median else None
    return round(median, 2), round(spread, 3) if spread is not None else None


def run(quick):
    seconds, reps = (0.3, 3) if quick else (1.0, 5)
    reply = list_reply()
    payload = blobmsg.encode_table(reply)
    decoded = blobmsg.decode_table(payload)
    assert blobmsg.encode_table(decoded) == payload
    text = json.dumps(reply)
    frame = ubusmsg.encode(ubusmsg.Message(ubusmsg.DATA, 1, 0x1234,
                                           {ubusmsg.ATTR_OBJID: 0x1234, ubusmsg.ATTR_DATA: reply}))

    def read_frame():
        ubusmsg.MessageReader().feed(frame)

    figures = {
        "encode": lambda: blobmsg.encode_table(reply),
        "decode": lambda: blobmsg.decode_table(payload),
        "to_json_indent": lambda: blobmsg.to_json(decoded, indent=True),
        "format_json_indent": lambda: blobmsg.format_json(payload, indent=True),
        "frame_encode": lambda: ubusmsg.encode(ubusmsg.Message(
            ubusmsg.DATA, 1, 0x1234, {ubusmsg.ATTR_OBJID: 0x1234, ubusmsg.ATTR_DATA: reply})),
        "frame_read": read_frame,
        "baseline_json_dumps": lambda: json.dumps(reply),
        "baseline_json_loads": lambda: json.loads(text),
    }
    result = {"instances": 1000, "payload_bytes": len(payload), "json_bytes": len(text)}
    for name, fn in figures.items():
        ops, spread = _rate(fn, seconds, reps)
        result[f"{name}_ops_per_s"] = ops
        result[f"{name}_spread"] = spread
        result[f"{name}_ms"] = round(1000 / ops, 3) if ops else None
    result["encode_vs_json_dumps"] = round(
        result["baseline_json_dumps_ops_per_s"] / result["encode_ops_per_s"], 2)
    result["decode_vs_json_loads"] = round(
        result["baseline_json_loads_ops_per_s"] / result["decode_ops_per_s"], 2)
    return result


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
