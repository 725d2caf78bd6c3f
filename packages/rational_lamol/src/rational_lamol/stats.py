"""Paired comparisons of methods over (seed, order) pairs (docs/algorithms.md §4).

Pure functions over run records (``results.json`` entries): for a method against a reference
(``lamol``, or its random control), the per-pair differences of a lifelong metric, their mean, a
95% percentile-bootstrap interval of the mean, and a two-sided exact sign test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rationale_commons.errors import DataError

COMPARED_METRICS = ("acc", "bwt")
BOOTSTRAP_RESAMPLES = 10_000


def pair_key(record: Mapping[str, Any]) -> tuple[str, int, tuple[str, ...]]:
    """What pairs two methods' runs: the same experiment (``run_dir``, when the caller adds it), seed
    and task order."""
    return str(record.get("run_dir", "")), int(record["seed"]), tuple(record["order"])


def paired_differences(
    records: Iterable[Mapping[str, Any]], method: str, reference: str, metric: str
) -> list[float]:
    """``metric(method) - metric(reference)`` for every (seed, order) both ran, in key order."""
    by_method: dict[str, dict[tuple[int, tuple[str, ...]], float]] = {method: {}, reference: {}}
    for record in records:
        name = record["method"]
        if name not in by_method:
            continue
        key = pair_key(record)
        if key in by_method[name]:
            raise DataError(f"{name} ran twice at seed {key[1]}, order {'->'.join(key[2])} of one run dir")
        value = record["metrics"].get(metric)
        if value is not None:
            by_method[name][key] = float(value)
    shared = sorted(set(by_method[method]) & set(by_method[reference]))
    return [by_method[method][k] - by_method[reference][k] for k in shared]


def bootstrap_interval(
    values: Sequence[float], *, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean (``None`` for no values)."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def sign_test(values: Sequence[float]) -> float | None:
    """Two-sided exact sign test of "positive and negative differences are equally likely";
    zero differences are dropped (``None`` when nothing is left)."""
    wins = sum(v > 0 for v in values)
    losses = sum(v < 0 for v in values)
    n = wins + losses
    if n == 0:
        return None
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def binomial_upper_tail(successes: int, n: int, rate: float) -> float:
    """P(X >= successes) for X ~ Binomial(n, rate): how likely a guesser right at ``rate`` does as
    well. Summed in log space, so large n neither overflows nor underflows."""
    if successes <= 0:
        return 1.0
    if rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        return 1.0
    log_p, log_q = math.log(rate), math.log1p(-rate)
    terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q
             for k in range(successes, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def compare(records: Sequence[Mapping[str, Any]], method: str, reference: str, metric: str) -> dict[str, Any]:
    """One row of the comparison table."""
    diffs = paired_differences(records, method, reference, metric)
    interval = bootstrap_interval(diffs)
    return {
        "method": method,
        "against": reference,
        "metric": metric,
        "n_pairs": len(diffs),
        "mean_difference": float(np.mean(diffs)) if diffs else None,
        "ci95": list(interval) if interval else None,
        "wins": sum(d > 0 for d in diffs),
        "losses": sum(d < 0 for d in diffs),
        "ties": sum(d == 0 for d in diffs),
        "sign_test_p": sign_test(diffs),
    }


def comparisons(
    records: Sequence[Mapping[str, Any]], controls: Mapping[str, str], baseline: str = "lamol"
) -> list[dict[str, Any]]:
    """Every method against ``baseline`` and, where it has one in the runs, against its random
    control (``controls[method]``), for ACC and BWT."""
    present = list(dict.fromkeys(r["method"] for r in records))
    pairs = []
    for method in present:
        if method != baseline and baseline in present:
            pairs.append((method, baseline))
        control = controls.get(method)
        if control in present:
            pairs.append((method, control))
    return [compare(records, m, ref, metric) for m, ref in pairs for metric in COMPARED_METRICS]
