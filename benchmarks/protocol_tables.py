"""Markdown tables of a protocol summary written by ``bench_main_job.py`` (for docs/results and the README).

    python benchmarks/protocol_tables.py benchmarks/results/main_job/protocol_demo.json [--learned-below 60]
    python benchmarks/protocol_tables.py benchmarks/results/main_job/protocol_paper_cpu_v2.json \
        --majority-from benchmarks/results/task_baselines/paper-cpu.json

Prints: the unlearned (seed, order) pairs (``lamol`` scored below ``--learned-below`` on a task
right after training it, or with ``--majority-from`` at or below that task's majority class: the
protocol's pre-registered learnability rule), ACC / BWT mean ± std per method with the share of
CCI's examples whose vote a tie split, the paired comparisons as the summary records them, and the
primary comparisons again without the unlearned pairs; with ``--matrices``, every run's score matrix.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from rational_lamol.stats import compare

PRIMARY = [("rational-block", "lamol"), ("rational-block", "random-block"),
           ("rational-head", "lamol"), ("rational-head", "random-head")]


def unlearned_pairs(
    runs: list[dict], below: float, majority: dict[str, float] | None = None
) -> set[tuple[int, tuple[str, ...]]]:
    """(seed, order) pairs where lamol's diagonal (a task's score right after training it) dips below
    ``below``, or, given each task's ``majority`` class score, is at or below it."""

    def unlearned(task: str, score: float) -> bool:
        return score <= majority[task] if majority is not None else score < below

    return {(r["seed"], tuple(r["order"])) for r in runs if r["method"] == "lamol"
            and any(unlearned(task, r["score_matrix"][i][i]) for i, task in enumerate(r["order"]))}


def majority_scores(path: Path) -> dict[str, float]:
    """Each task's majority-class score from ``bench_task_baselines.py``'s JSON."""
    return {task: row["majority"] for task, row in json.loads(path.read_text())["tasks"].items()}


def fmt(x: float | None, sign: bool = True) -> str:
    return "—" if x is None else (f"{x:+.1f}" if sign else f"{x:.1f}")


def mean_std(cell: dict) -> str:
    return "—" if cell["mean"] is None else f"{cell['mean']:.1f} ± {cell['std']:.1f}"


def comparison_row(row: dict) -> str:
    lo, hi = row["ci95"] or (None, None)
    p = row["sign_test_p"]
    return (f"| `{row['method']}` − `{row['against']}` | {row['metric'].upper()} | {row['n_pairs']} | "
            f"{fmt(row['mean_difference'])} | [{fmt(lo)}, {fmt(hi)}] | {row['wins']} / {row['losses']} / {row['ties']} | "
            f"{'—' if p is None else f'{p:.2f}'} |")


def matrix_rows(runs: list[dict]) -> list[str]:
    """One markdown row per run: its score matrix, row i = the scores after training task i."""
    rows = []
    for r in sorted(runs, key=lambda r: (r["seed"], r["order"], r["method"])):
        matrix = " / ".join(" ".join(f"{x:.1f}" for x in row) for row in r["score_matrix"])
        rows.append(f"| {r['seed']} | {' → '.join(r['order'])} | `{r['method']}` | {matrix} | "
                    f"{r['metrics']['acc']:.1f} | {r['metrics']['bwt']:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summary", type=Path)
    parser.add_argument("--learned-below", type=float, default=60.0)
    parser.add_argument("--majority-from", type=Path, default=None,
                        help="bench_task_baselines.py JSON: unlearned = at or below the task's majority class")
    parser.add_argument("--matrices", action="store_true", help="also print every run's score matrix")
    args = parser.parse_args()
    data = json.loads(args.summary.read_text())
    runs = [{**r, "run_dir": f"seed{r['seed']}"} for r in data["per_run"]]
    pairs = {(r["seed"], tuple(r["order"])) for r in runs if r["method"] == "lamol"}
    majority = majority_scores(args.majority_from) if args.majority_from else None
    unlearned = unlearned_pairs(runs, args.learned_below, majority)
    print(f"pairs with lamol finished: {len(pairs)}; unlearned: {len(unlearned)}")
    for seed, order in sorted(unlearned):
        lamol = next(r for r in runs if r["method"] == "lamol" and r["seed"] == seed and tuple(r["order"]) == order)
        diagonal = " / ".join(f"{lamol['score_matrix'][i][i]:.1f}" for i in range(len(order)))
        print(f"- seed {seed}, {' → '.join(order)}: lamol diagonal {diagonal}")

    print("\n| method | runs | ACC | BWT | CCI examples with tied votes |\n|---|---|---|---|---|")
    for row in data["summary"]:
        acc, bwt, tied = row["acc"], row["bwt"], row.get("cci_tied_share")
        print(f"| `{row['method']}` | {row['n_runs']} | {mean_std(acc)} | {mean_std(bwt) if bwt['n'] else '—'} | "
              f"{'' if tied is None else f'{100 * tied:.1f}%'} |")

    print("\n| comparison | metric | pairs | mean difference | 95% CI | wins / losses / ties | sign test p |")
    print("|---|---|---|---|---|---|---|")
    for row in data["comparisons"]:
        print(comparison_row(row))

    learned = [r for r in runs if (r["seed"], tuple(r["order"])) not in unlearned]
    print(f"\nWithout the unlearned pairs ({len(pairs - unlearned)} pairs):\n")
    print("| comparison | metric | pairs | mean difference | 95% CI | wins / losses / ties | sign test p |")
    print("|---|---|---|---|---|---|---|")
    methods = {r["method"] for r in runs}
    for method, reference in [c for c in PRIMARY if set(c) <= methods]:
        print(comparison_row(compare(learned, method, reference, "acc")))
    lamol_acc = [r["metrics"]["acc"] for r in learned if r["method"] == "lamol"]
    if lamol_acc:
        print(f"\nlamol ACC over the learned pairs: {statistics.fmean(lamol_acc):.1f}")
    if args.matrices:
        print("\n| seed | order | method | score matrix (rows: after task 1, 2, 3) | ACC | BWT |")
        print("|---|---|---|---|---|---|")
        print("\n".join(matrix_rows(runs)))


if __name__ == "__main__":
    main()
