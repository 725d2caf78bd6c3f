"""InvRat on an ERASER task trained from labels only, scored against the human rationales.

Trains InvRat on the task's train split (val selects the model; no human rationale is read in
training), rationalizes the test split and scores it with the shared ERASER scorer. For Movies the
JSON puts the ERASER paper's Table 3 rows beside it (Lei et al. 2016 on the same split).

    python benchmarks/bench_invrat_eraser.py [--data ../shared/data/eraser/movies]
        [--config benchmarks/invrat_movies.toml] [--out runs/invrat-movies] [--resume]
        [--annotations] [--set KEY=VALUE ...]

Writes benchmarks/results/invrat_eraser/<task>.json (or --json); with --annotations also the generated
rationales of every split as ERASER annotation files (<out>/annotations_<split>.jsonl), the input
of Rational LAMOL (a task's ``rationales = "<file>"``, or ``rational-lamol cci --rationales``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from invrat import Rationale, Rationalizer, load_config, to_annotations, to_results, train_invrat
from rationale_commons.eraser_io import examples_to_annotations, write_annotations
from rationale_commons.loaders import load_data
from rationale_commons.metrics.eraser import score_results, summary
from rationale_commons.runtime import choose_device, machine_info, write_json_atomic
from rationale_commons.spans import mask_to_spans

from common import (
    BENCHMARKS,
    ERASER_TABLE3_MOVIES,
    SHARED_DATA,
    format_overrides,
    parse_override,
    result_path,
)


def random_rationales(rationales: Sequence[Rationale], window: int, rng: random.Random, *, spans: bool) -> list[Rationale]:
    """Chance rationales as long as the model's, within the words it could read (the first ``window``):
    the same number of words per document at uniform positions, or (``spans``) the model's own span
    lengths at uniform starts (spans may overlap, so slightly fewer words). A score near theirs says
    the metric rewards length, not placement."""
    out = []
    for r in rationales:
        n = min(window, len(r.mask))
        mask = [0] * len(r.mask)
        if spans:
            for start, end in mask_to_spans(r.mask):
                first = rng.randrange(max(1, n - (end - start) + 1))
                mask[first:first + end - start] = [1] * (end - start)
        else:
            for i in rng.sample(range(n), min(n, sum(r.mask))):
                mask[i] = 1
        out.append(dataclasses.replace(r, mask=mask))
    return out


def chance_scores(rationales: Sequence[Rationale], gold: Sequence, window: int, draws: int = 5) -> dict[str, dict[str, float]]:
    """Token and IOU F1 of random rationales of the model's length (mean of ``draws`` seeded draws)."""
    rng = random.Random(0)
    result = {}
    for name, spans in (("random_words", False), ("random_spans", True)):
        scores = [summary(score_results(to_results(random_rationales(rationales, window, rng, spans=spans)), gold))
                  for _ in range(draws)]
        result[name] = {key: round(sum(s[key] for s in scores) / draws, 4) for key in ("token_f1", "iou_f1")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "eraser" / "movies")
    parser.add_argument("--config", type=Path, default=BENCHMARKS / "invrat_movies.toml")
    parser.add_argument("--out", type=Path, default=Path("runs/invrat-movies"))
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run; with a larger --epochs, train a finished run on")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--annotations", action="store_true", help="write every split's rationales as ERASER annotations")
    parser.add_argument("--set", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the config file, e.g. --set max_len=2000")
    args = parser.parse_args()

    overrides = {"progress": False, **dict(args.set)}
    if args.epochs:
        overrides["epochs"] = args.epochs
    config = load_config(args.config, **overrides)
    if config.runtime.num_threads:
        torch.set_num_threads(config.runtime.num_threads)
    splits = load_data(str(args.data))
    task = splits.name or args.data.name
    start = time.perf_counter()
    run_dir = train_invrat(splits, config, args.out, resume=args.resume)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    rationalizer = Rationalizer(run_dir)
    rationales = {"test": rationalizer(splits.test)}
    rationalize_seconds = time.perf_counter() - start
    gold = examples_to_annotations(splits.test)
    scores = summary(score_results(to_results(rationales["test"]), gold))
    chance = chance_scores(rationales["test"], gold, config.data.max_len)
    written = {}
    if args.annotations:
        for split in ("train", "val", "test"):  # the test rationales are the ones just scored
            if split not in rationales:
                rationales[split] = rationalizer(splits[split])
            path = Path(run_dir) / f"annotations_{split}.jsonl"
            write_annotations(path, to_annotations(splits[split], rationales[split]))
            written[split] = str(path)
    result = {
        "benchmark": f"invrat on ERASER {task}, trained from labels only",
        "command": f"python benchmarks/bench_invrat_eraser.py --data {args.data} --config {args.config}"
        + (f" --epochs {args.epochs}" if args.epochs else "") + (" --resume" if args.resume else "")
        + format_overrides(args.set),
        "config": config.model_dump(mode="json"),
        "test": scores,
        "chance": chance,  # random rationales of the same lengths, for scale
        "n_test": len(splits.test),
        "train_seconds": round(train_seconds, 1),  # this invocation
        "train_seconds_all_epochs": round(sum(m["seconds"] for m in json.loads((Path(run_dir) / "metrics.json").read_text())), 1),
        "rationalize_seconds": round(rationalize_seconds, 1),
        "annotation_files": written or None,
        "reference": ERASER_TABLE3_MOVIES if task == "movies" else None,
        "machine": machine_info(choose_device(config.runtime.device)),
    }
    out = args.json or result_path("invrat_eraser", task)
    write_json_atomic(out, result)
    print(f"{task}: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))
    print("chance (random rationales of the same lengths): " + "  ".join(
        f"{name} token_f1 {v['token_f1']:.3f} iou_f1 {v['iou_f1']:.3f}" for name, v in chance.items()))
    print(f"written {out}")


if __name__ == "__main__":
    main()
