"""``results.json``: the run dir's contract, and the table printed at the end of a run.

``{"runs": [{"method", "seed", "order", "dir", "score_matrix", "baseline", "metrics",
"environment", "stages", ...}], "metric_definitions": {...}, "config_name": ...}``

``results.json`` holds only what the computation decides, so the same config, seed and thread
count on the same machine give a byte-identical file. Wall-clock measurements (the keys in
:data:`TIMING_KEYS`) go to ``timings.json`` beside it (and each run's ``timing.json``).

``score_matrix[i][j]``: score (percent, exact match) on the j-th task of ``order`` after
training the i-th task of ``order`` (``multitask``: one row). ``baseline``: the scores before any
training. ``metrics`` are recomputed from those two by ``rationale_commons.metrics.lifelong``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rationale_commons.metrics.lifelong import METRIC_DEFINITIONS, lifelong_metrics
from rationale_commons.runtime import write_json_atomic

METRICS = ("acc", "bwt", "fwt", "forgetting")
#: keys whose values are wall-clock measurements: kept out of results.json
TIMING_KEYS = frozenset({"seconds", "wall_seconds", "tokens_per_second", "eval_seconds", "cci_seconds",
                         "peak_rss_mb"})


def split_timings(obj: Any) -> tuple[Any, Any]:
    """``(obj without timing keys, the timing keys alone)``, recursively through dicts and lists;
    the second is ``None`` where ``obj`` holds no timing."""
    if isinstance(obj, dict):
        kept, timing = {}, {}
        for key, value in obj.items():
            if key in TIMING_KEYS:
                timing[key] = value
                continue
            kept[key], sub = split_timings(value)
            if sub is not None:
                timing[key] = sub
        return kept, timing or None
    if isinstance(obj, list):
        pairs = [split_timings(v) for v in obj]
        timings = [t for _, t in pairs]
        return [k for k, _ in pairs], timings if any(t is not None for t in timings) else None
    return obj, None


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def build_run_record(
    *, method: str, seed: int, order: Sequence[str], rel_dir: str, rows: Sequence[Sequence[float]],
    baseline: Sequence[float], extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    matrix = [list(map(float, r)) for r in rows]
    metrics = lifelong_metrics(matrix, baseline=list(baseline))
    return {
        "method": method,
        "seed": seed,
        "order": list(order),
        "dir": rel_dir,
        "score_matrix": matrix,
        "baseline": list(map(float, baseline)),
        "metrics": {k: _round(metrics.get(k)) for k in METRICS},
        **(extra or {}),
    }


def write_results(
    out_dir: str | Path, records: Sequence[dict[str, Any]], config=None,
    timings: Sequence[dict[str, Any] | None] | None = None,
) -> Path:
    """``results.json`` (and ``timings.json``, one entry per record, when ``timings`` is given)."""
    path = Path(out_dir) / "results.json"
    if timings is not None:
        write_json_atomic(Path(out_dir) / "timings.json",
                          {"runs": [{"dir": r["dir"], **(t or {})} for r, t in zip(records, timings, strict=True)]})
    data = {
        "runs": list(records),
        "metric_definitions": dict(METRIC_DEFINITIONS),
        "score_unit": "percent exact match of the greedy answer",
    }
    if config is not None:
        data["config_name"] = config.name
    write_json_atomic(path, data)
    return path


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:+.1f}" if v < 0 else f"{v:.1f}"


def format_table(records: Sequence[dict[str, Any]], timings: Sequence[dict[str, Any] | None] | None = None) -> str:
    """One line per run: method, seed, order, ACC, BWT, FWT, forgetting, wall time (from ``timings``)."""
    timings = timings if timings is not None else [None] * len(records)
    head = ["method", "seed", "order", "ACC", "BWT", "FWT", "forget", "final scores", "seconds"]
    rows = []
    for r, t in zip(records, timings, strict=True):
        m = r["metrics"]
        seconds = (t or {}).get("wall_seconds", r.get("wall_seconds"))
        final = " ".join(f"{s:.0f}" for s in r["score_matrix"][-1])
        rows.append([r["method"], str(r["seed"]), ">".join(r["order"]), *(_fmt(m.get(k)) for k in METRICS),
                     final, "—" if seconds is None else f"{seconds:.0f}"])
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
