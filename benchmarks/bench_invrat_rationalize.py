"""Rationalize throughput on Movies-length documents (target: >= 1,000 documents/minute on 2 CPU cores).

Usage:  python benchmarks/bench_invrat_rationalize.py [--run-dir RUN] [--docs 1000] [--threads 2]

Documents are ERASER Movies reviews from ../shared/data/eraser/movies when present (cycled to
--docs), else synthetic 730-word documents. Without --run-dir a run dir with the Movies config
(benchmarks/invrat_movies.toml) and untrained weights is written to a temporary folder: inference
cost does not depend on the weight values. Writes benchmarks/results/invrat_rationalize/cpu.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import torch

from invrat import InvRatConfig, Rationalizer, load_config, train_invrat
from rationale_commons.records import Example, Splits
from rationale_commons.runtime import write_json_atomic

from common import BENCHMARKS, SHARED_DATA, command_line, result_path

MOVIES = SHARED_DATA / "eraser" / "movies"


def movies_like(n: int) -> tuple[list[Example], str]:
    if MOVIES.is_dir():
        from rationale_commons.loaders import load_eraser

        pool = [ex for split in ("test", "val") for ex in load_eraser(MOVIES)[split]]
        return [pool[i % len(pool)].model_copy(update={"id": f"doc{i}"}) for i in range(n)], str(MOVIES)
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    return [
        Example(id=f"doc{i}", words=[rng.choice(words) for _ in range(730)], label=rng.choice(["NEG", "POS"]))
        for i in range(n)
    ], "synthetic 730-word documents"


def untrained_run_dir(config: InvRatConfig, examples: list[Example], folder: Path) -> Path:
    """A real run dir from a 1-batch 'training' (the weights are irrelevant to speed)."""
    cfg = config.model_copy(update={"epochs": 1, "warmup_epochs": 0, "restarts": 1, "progress": False,
                                    "embedding": "scratch", "embedding_dim": 50})
    small = Splits(train=examples[:8], val=examples[8:10])
    return train_invrat(small, cfg.model_copy(update={"batch_size": 8}), folder / "run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--config", type=Path, default=BENCHMARKS / "invrat_movies.toml")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", type=Path, default=result_path("invrat_rationalize", "cpu"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    examples, source = movies_like(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or untrained_run_dir(load_config(args.config), examples, Path(tmp))
        model = Rationalizer(run_dir, device="cpu")
        model(examples[:32], args.batch_size)  # warm-up
        start = time.perf_counter()
        rationales = model(examples, args.batch_size)
        seconds = time.perf_counter() - start
        cfg = model.config
    per_minute = len(rationales) / seconds * 60
    result = {
        "benchmark": "invrat rationalize throughput",
        "command": command_line(),
        "documents": len(rationales),
        "source": source,
        "mean_words": sum(len(ex.words) for ex in examples) / len(examples),
        "max_len": cfg.data.max_len,
        "hidden_dim": cfg.players.hidden_dim,
        "batch_size": args.batch_size or cfg.runtime.eval_batch_size,
        "threads": args.threads,
        "seconds": round(seconds, 2),
        "docs_per_minute": round(per_minute, 1),
        "target_docs_per_minute": 1000,
        "meets_target": per_minute >= 1000,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
