"""Medians, noise and ratios over repetitions."""

import math
import statistics


def summarize(samples):
    """{'median', 'noise', 'n', 'samples'}; noise = IQR / median (None below 2 samples)."""
    values = [v for v in samples if v is not None]
    if not values:
        return {"median": None, "noise": None, "n": 0, "samples": list(samples)}
    median = statistics.median(values)
    noise = None
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        noise = (q3 - q1) / median if median else 0.0
    return {"median": median, "noise": noise, "n": len(values), "samples": list(samples)}


def ratio(a, b):
    """a/b of two summaries, with the two relative noises combined in quadrature."""
    if a["median"] is None or not b["median"]:
        return {"ratio": None, "noise": None}
    noise = None
    if a["noise"] is not None and b["noise"] is not None:
        noise = math.hypot(a["noise"], b["noise"])
    return {"ratio": a["median"] / b["median"], "noise": noise}


def agree(r1, r2):
    """Do two ratio measurements agree within their reported noises (in quadrature)?"""
    if r1["ratio"] is None or r2["ratio"] is None:
        return None
    allowed = math.hypot(r1["noise"] or 0.0, r2["noise"] or 0.0)
    mean = (r1["ratio"] + r2["ratio"]) / 2
    return abs(r1["ratio"] - r2["ratio"]) <= allowed * mean
