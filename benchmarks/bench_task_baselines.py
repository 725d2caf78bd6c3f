"""Benchmark: what each task's labels alone give on its test split, for an experiment config: the
majority training label and a TF-IDF logistic regression trained on the same (capped, windowed)
training examples the LM sees (:mod:`rational_lamol.task_baselines`, what every run dir records
in ``task_baselines.json``), without training anything else.

    python benchmarks/bench_task_baselines.py --config benchmarks/protocols/demo.toml
    python benchmarks/bench_task_baselines.py --config paper_cpu

Writes ``benchmarks/results/task_baselines/<config name>.json``.
"""

from __future__ import annotations

import time

from rational_lamol.task_baselines import task_baselines
from rational_lamol.tasks import load_tasks

from common import command_line, config_and_out, result_path, write_result


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    config, out = config_and_out(__doc__, argv)
    rows = task_baselines(load_tasks(config))
    for task, row in rows.items():
        print(f"{task}: majority {row['majority']:.1f}%, TF-IDF {row['tfidf_logreg']:.1f}% "
              f"({row['n_train']} train, {row['n_test']} test)")
    result = {"benchmark": "per-task label baselines (majority, TF-IDF logistic regression) on a config's tasks",
              "command": command_line(), "config": config.name, "tasks": rows,
              "total_seconds": round(time.perf_counter() - started, 1)}
    write_result(out or result_path("task_baselines", config.name), result)
    return result


if __name__ == "__main__":
    main()
