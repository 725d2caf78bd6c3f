"""Benchmark: what a rationale of InvRat's length scores by chance on the examples CCI reads.

For every task of a config whose rationales come from InvRat, the split CCI reads (``val``) is
scored against the data's own rationales (the planted words of the synthetic suite) as ``cci.json``
scores InvRat (``rationale_quality``), for the two selections ``invrat evaluate`` prints beside its
scores: as many words at random (the mean of 20 seeded draws) and the first words. The length is
InvRat's own under top-alpha selection, ``ceil(alpha * n)`` words of an n-word document.

    python benchmarks/bench_rationale_chance.py --config benchmarks/protocols/demo_v2.toml

Writes ``benchmarks/results/rationale_chance/<config name>.json``; nothing is trained.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from invrat.baselines import BASELINE_SEED, first_k_selection, random_selection
from invrat.evaluate import RANDOM_DRAWS
from rational_lamol.rationale_sources import rationale_quality
from rational_lamol.tasks import load_tasks
from rationale_commons.records import Example
from rationale_commons.spans import spans_to_mask

from common import command_line, config_and_out, result_path, write_result

SPLIT = "val"  # the split CCI reads its examples from


def masks_of(lines: Sequence[dict[str, Any]], examples: Sequence[Example]) -> dict[str, list[int]]:
    """Word masks of results lines (one document per example, keyed by the example's id)."""
    out = {}
    for line, ex in zip(lines, examples, strict=True):
        spans = [(h["start_token"], h["end_token"]) for r in line["rationales"] for h in r["hard_rationale_predictions"]]
        out[ex.id] = spans_to_mask(spans, len(ex.words))
    return out


def chance_scores(examples: Sequence[Example], alpha: float, draws: int = RANDOM_DRAWS) -> dict[str, Any]:
    """Token F1 (macro) of ``ceil(alpha * n)`` words at random and of the first words."""
    lines = [{"annotation_id": ex.id, "rationales": [{"docid": ex.id, "hard_rationale_predictions":
             [{"start_token": 0, "end_token": max(1, math.ceil(alpha * len(ex.words)))}]}]} for ex in examples]
    documents = {ex.id: ex.words for ex in examples}
    random_f1 = [rationale_quality(examples, masks_of(random_selection(lines, documents, BASELINE_SEED + i), examples))["token_f1_macro"]
                 for i in range(draws)]
    first_k = rationale_quality(examples, masks_of(first_k_selection(lines, documents), examples))
    return {"n": len(examples), "random_token_f1": round(sum(random_f1) / draws, 4), "random_draws": draws,
            "first_k_token_f1": first_k["token_f1_macro"], "selection_rate": first_k["selection_rate"]}


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    config, out = config_and_out(__doc__, argv)
    alpha = float(config.invrat["alpha"])
    tasks = load_tasks(config)
    rows = {}
    for spec in config.tasks:
        if spec.rationales != "invrat":
            continue
        rows[spec.name] = chance_scores(tasks[spec.name].splits[SPLIT], alpha)
        print(f"{spec.name}: random {rows[spec.name]['random_token_f1']:.3f}, "
              f"first k {rows[spec.name]['first_k_token_f1']:.3f} ({rows[spec.name]['n']} {SPLIT} examples)")
    result = {"benchmark": "token F1 of InvRat-length rationales at random and from the front, on CCI's examples",
              "command": command_line(), "config": config.name, "split": SPLIT, "alpha": alpha, "tasks": rows,
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_result(out or result_path("rationale_chance", config.name), result)
    return result


if __name__ == "__main__":
    main()
