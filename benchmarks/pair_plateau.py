"""How long a task stays on its loss plateau: the first epoch whose training loss falls below a
level ("escape"), per run, with the task's diagonal (its score right after training), read from
the ``progress.json`` of finished run dirs (no training here).

On the demo, the pair task after a keyword task sits at a loss of about 1.75-1.9 for a few epochs
and then drops to about 1.1; a run leaves it unlearned when the drop has not come by the end
(docs/results/demo_design.md, "The pair task's plateau").

    python benchmarks/pair_plateau.py runs/plateau/gpt2_sentiment runs/plateau/llama_sentiment ...
        [--task pair] [--level 1.3] [--out benchmarks/results/pair_plateau/NAME.json]

Each argument is a run dir of ``rational-lamol run``; its results are grouped under the dir's name,
or all under ``--group NAME`` (e.g. the one dir per seed that ``bench_main_job.py`` writes).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import command_line, result_path, write_result


def escape_epoch(losses: list[float], level: float) -> int | None:
    """The first epoch (1-based) whose loss is below ``level``; None when none is."""
    return next((i + 1 for i, loss in enumerate(losses) if loss < level), None)


def stage_rows(run_dir: Path, task: str, level: float) -> list[dict]:
    """One row per method run (seed, order) in ``run_dir`` that trained ``task`` after another task."""
    rows = []
    for progress in sorted(run_dir.glob("*/seed*/*/progress.json")):
        stages = json.loads(progress.read_text())["stages"]
        order = progress.parents[2].name.split("-")
        for position, stage in enumerate(stages):
            if stage["tasks"] != [task] or position == 0:
                continue
            losses = [loss for part in stage["train"] for loss in part["epoch_losses"]]
            rows.append({
                "seed": int(progress.parents[1].name.removeprefix("seed")),
                "order": order,
                "method": progress.parent.name,
                "after": order[position - 1],
                "diagonal": stage["scores"][position],
                "escape_epoch": escape_epoch(losses, level),
                "epochs": len(losses),
                "epoch_losses": [round(x, 4) for x in losses],
            })
    return rows


def summarize(rows: list[dict], unlearned_below: float = 60.0) -> dict:
    escapes = [r["escape_epoch"] for r in rows if r["escape_epoch"] is not None]
    return {
        "runs": len(rows),
        "escaped": len(escapes),
        "median_escape_epoch": statistics.median(escapes) if escapes else None,
        "escape_epochs": sorted(escapes),
        "unlearned": sum(r["diagonal"] < unlearned_below for r in rows),
        "lowest_diagonal": min((r["diagonal"] for r in rows), default=None),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--task", default="pair")
    parser.add_argument("--level", type=float, default=1.3, help="the loss below which a stage has escaped")
    parser.add_argument("--group", help="pool every run dir under this name")
    parser.add_argument("--out", type=Path, default=result_path("pair_plateau", "plateau"))
    args = parser.parse_args(argv)
    pooled: dict[str, list[dict]] = {}
    for run_dir in args.run_dirs:
        pooled.setdefault(args.group or run_dir.name, []).extend(stage_rows(run_dir, args.task, args.level))
    groups = {}
    for name, rows in pooled.items():
        groups[name] = {"summary": summarize(rows), "runs": rows}
        s = groups[name]["summary"]
        print(f"{name}: {s['runs']} runs, escaped {s['escaped']}, median escape epoch "
              f"{s['median_escape_epoch']}, epochs {s['escape_epochs']}, unlearned {s['unlearned']}, "
              f"lowest diagonal {s['lowest_diagonal']}")
    result = {"benchmark": f"the {args.task} task's loss plateau after another task: first epoch below "
                           f"{args.level}, and the diagonal", "command": command_line(), "task": args.task,
              "level": args.level, "groups": groups}
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
