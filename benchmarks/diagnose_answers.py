"""What a trained stage's model answers on one task, on its train and test splits.

A model that answers its training examples right and its test examples at chance has memorized
them (docs/results/demo_design.md, "Redesign"). Prints the exact-match score and the most common
answers per split.

    python benchmarks/diagnose_answers.py CONFIG.toml RUN/<order>/seed<S>/<method>/<k>_<task>/model TASK
"""

from __future__ import annotations

import argparse
from collections import Counter

from rational_lamol.config import load_config
from rational_lamol.evaluate import evaluate_task
from rational_lamol.modeling import load_saved
from rational_lamol.tasks import load_tasks, special_ids
from rationale_commons.errors import DataError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the experiment TOML the run was made with")
    parser.add_argument("model", help="a stage's saved model folder")
    parser.add_argument("task", help="task name from the config")
    parser.add_argument("--splits", default="train,test")
    args = parser.parse_args()
    config = load_config(args.config)
    tasks = load_tasks(config)
    if args.task not in tasks:
        raise SystemExit(f"diagnose_answers: no task {args.task!r} in {args.config} (tasks: {', '.join(tasks)})")
    try:
        model, tokenizer = load_saved(args.model)  # safetensors only: never a pickle from a handed-in folder
    except DataError as exc:
        raise SystemExit(f"diagnose_answers: {exc}") from None
    ids = special_ids(tokenizer, [t.name for t in config.tasks], shared_gen=config.training.gen_token == "shared")
    for split in args.splits.split(","):
        score, answers = evaluate_task(model, tokenizer, tasks[args.task], ids, max_length=config.model.max_length,
                                       split=split, return_predictions=True)
        print(f"{split}: {score:.1f}% right; answers {Counter(answers).most_common(8)}")


if __name__ == "__main__":
    main()
