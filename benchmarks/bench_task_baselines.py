"""Benchmark: what each task's labels alone give on its test split, for an experiment config: the
majority training label and a TF-IDF logistic regression trained on the same (capped, windowed)
training examples the LM sees (:mod:`rational_lamol.task_baselines`, what every run dir records
in ``task_baselines.json``), without training anything else.

    python benchmarks/bench_task_baselines.py --config benchmarks/protocols/demo.toml
    python benchmarks/bench_task_baselines.py --config paper_cpu

Writes ``benchmarks/results/task_baselines/<config name>.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rational_lamol.config import load_config
from rational_lamol.task_baselines import task_baselines
from rational_lamol.tasks import load_tasks

from common import command_line, result_path, write_result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a config file, or a built-in config's name")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    config = load_config(args.config)
    rows = task_baselines(load_tasks(config))
    for task, row in rows.items():
        print(f"{task}: majority {row['majority']:.1f}%, TF-IDF {row['tfidf_logreg']:.1f}% "
              f"({row['n_train']} train, {row['n_test']} test)")
    result = {"benchmark": "per-task label baselines (majority, TF-IDF logistic regression) on a config's tasks",
              "command": command_line(), "config": config.name, "tasks": rows,
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_result(args.out or result_path("task_baselines", config.name), result)
    return result


if __name__ == "__main__":
    main()
