"""Plain-text tables for the peer comparison and the module results."""

from .peers.harness import METRICS, SUBJECT


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


def _with_noise(value, noise):
    text = _fmt(value)
    if value and noise is not None:  # a spread around 0 or nothing says nothing
        text += f" ±{noise * 100:.0f}%"
    return text


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def peers_table(result):
    """Medians (± IQR/median) per metric and peer, then pyprocd/peer ratios."""
    cfg = result["config"]
    names = [n for n, p in result["peers"].items() if p.get("available")]
    out = []
    if names:
        header = ["metric", *names]
        rows = []
        for key, label, unit in METRICS:
            label = label.format(**cfg) + (f" ({unit})" if unit else "")
            rows.append([label, *(_with_noise(result["peers"][n]["metrics"][key]["median"],
                                              result["peers"][n]["metrics"][key]["noise"])
                                  for n in names)])
        out.append(f"Medians of {cfg['reps']} interleaved repetitions (± IQR/median):")
        out.append(_table(header, rows))
    ratios = result.get("ratios") or {}
    if ratios:
        header = ["metric", *(f"{SUBJECT}/{n}" for n in ratios)]
        rows = []
        for key, label, _ in METRICS[:-1]:
            rows.append([label.format(**cfg),
                         *(_with_noise(ratios[n][key]["ratio"], ratios[n][key]["noise"])
                           for n in ratios)])
        out.append("")
        out.append(f"Ratios {SUBJECT}/peer (below 1: {SUBJECT} is lower/better):")
        out.append(_table(header, rows))
    elif names:
        out.append(f"\nRatios: {SUBJECT} row pending ({_reason(result, SUBJECT)})")
    for name, peer in result["peers"].items():
        if not peer.get("available"):
            out.append(f"unavailable: {name}: {peer.get('reason')}")
        for err in peer.get("errors", []):
            out.append(f"error: {name}: {err}")
    return "\n".join(out)


def _reason(result, name):
    peer = result["peers"].get(name)
    if peer is None:
        return "not selected"
    return peer.get("reason") or "no data"


def _flatten(prefix, value, rows):
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, rows)
    else:
        rows.append([prefix, _fmt(value)])


def modules_table(modules):
    rows = []
    for name, outcome in modules.items():
        if outcome["ok"]:
            _flatten(name, outcome["result"], rows)
        else:
            rows.append([name, "FAILED: " + outcome["error"]])
    return _table(["module result", "value"], rows) if rows else "(no bench modules)"


def peers_markdown(results):
    """The README's Benchmarks tables, from a results file (python3 -m bench --markdown)."""
    result, m = results["peers"], results["machine"]
    cfg = result["config"]
    names = [n for n, p in result["peers"].items() if p.get("available")]
    machine = (f"Machine: {m['nproc']} cores ({m['cpu']}), kernel {m['kernel']}, "
               f"Python {m['python']}; {m['date']}; medians of {cfg['reps']} interleaved "
               f"repetitions, ± IQR/median.")
    lines = [machine, ""]
    versions = ", ".join(f"{n} {result['peers'][n]['version']}" for n in names)
    lines += [f"Versions: {versions}.", ""]
    lines.append("| metric (lower is better) | " + " | ".join(names) + " |")
    lines.append("| --- |" + " ---: |" * len(names))
    for key, label, unit in METRICS:
        label = label.format(**cfg) + (f" ({unit})" if unit else "")
        cells = [_with_noise(result["peers"][n]["metrics"][key]["median"],
                             result["peers"][n]["metrics"][key]["noise"]) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ratios = result.get("ratios") or {}
    if ratios:
        lines += ["", f"| {SUBJECT}/peer | " + " | ".join(ratios) + " |",
                  "| --- |" + " ---: |" * len(ratios)]
        for key, label, _ in METRICS[:-1]:
            cells = [_with_noise(ratios[n][key]["ratio"], ratios[n][key]["noise"])
                     for n in ratios]
            lines.append(f"| {label.format(**cfg)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _core_row(label, part, ours, base, unit, scale=1):
    if not part or part.get(ours) is None or part.get(base) is None:
        return None
    o, b = part[ours] * scale, part[base] * scale
    return [label, f"{_fmt(o)} {unit}", f"{_fmt(b)} {unit}", _fmt(round(o / b, 2)) if b else "-"]


def core_rows(core):
    """The supervisor's own costs next to their same-run baselines (bench_core):
    [row, pyprocd, baseline, ratio] (the baseline's name is in the row)."""
    rows = []
    for suffix, note in (("", ""), ("_state_file", ", state file")):
        each = core.get("set_each" + suffix) or {}
        n = each.get("services", "N")
        rows += [
            _core_row(f"start {n} (one set each), supervisor CPU{note} / bare posix_spawn",
                      each, "cpu_s", "bare_spawn_cpu_s", "ms", 1000),
            _core_row(f"start {n} (one set each), wall{note} / bare posix_spawn",
                      each, "wall_s", "bare_spawn_wall_s", "s"),
            _core_row(f"respawn gap exit -> next start, median{note} / bare spawn+wait",
                      core.get("respawn" + suffix), "exit_to_respawn_ms", "bare_spawn_wait_ms", "ms"),
            _core_row(f"SIGKILL {(core.get('killall' + suffix) or {}).get('instances', 'N')} "
                      f"-> all back{note} / bare kill+reap+spawn",
                      core.get("killall" + suffix), "all_back_s", "bare_kill_reap_spawn_s", "s"),
        ]
    lst = core.get("start_and_list") or {}
    n = lst.get("instances", "N")
    rows += [
        _core_row(f"list of {n}, server side (built + encoded) / json.dumps", lst,
                  "list_plus_blobmsg_encode_ms", "json_dumps_ms", "ms"),
        _core_row(f"list of {n} again, nothing changed / json.dumps", lst,
                  "list_encoded_again_ms", "json_dumps_ms", "ms"),
    ]
    daemon = core.get("daemon") or {}
    if daemon.get("daemon_pss_kb") and daemon.get("bare_python_pss_kb"):
        label = f"daemon PSS at {daemon['instances']} instances / python3 -I -S (budget bare + 3072 kB)"
        rows.append([label, f"{daemon['daemon_pss_kb']} kB",
                     f"{daemon['bare_python_pss_kb']} kB",
                     f"+{daemon['pss_over_bare_kb']} kB"])
    if "idle_voluntary_wakeups" in daemon:
        rows.append([f"idle wake-ups in {daemon['idle_seconds']:g} s", str(daemon["idle_voluntary_wakeups"]),
                     "0", "-"])
    return [r for r in rows if r is not None]


CORE_HEADER = ["row (pyprocd / same-run baseline)", "pyprocd", "baseline", "ratio"]


def core_table(core):
    return _table(CORE_HEADER, core_rows(core))


def core_markdown(core):
    lines = ["| " + " | ".join(CORE_HEADER) + " |", "| --- | ---: | ---: | ---: |"]
    lines += ["| " + " | ".join(row) + " |" for row in core_rows(core)]
    return "\n".join(lines)
