"""Reports over run dirs: a comparison table (mean ± std over seeds and orders) and an HTML page.

Everything here reads the run-dir contract only (``results.json``, each run's ``cci.json``, the
optional ``rationale_samples.json``), so a report can be rebuilt or aggregated over several run
dirs at any time: ``rational-lamol report RUN_DIR...``. Every number is recomputed from
``results.json`` by the pure functions below, the pseudo-sample quality of every replaying stage
(:mod:`rational_lamol.pseudo_quality`) included.
"""

from __future__ import annotations

import base64
import html
import io
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rational_lamol.pseudo_quality import describe, is_flagged, main_problems, pooled
from rationale_commons.errors import DataError
from rationale_commons.metrics.lifelong import METRIC_DEFINITIONS
from rationale_commons.runtime import atomic_file, path_inside, read_json, write_json_atomic

METRICS = ("acc", "bwt", "fwt", "forgetting")


@dataclass
class Run:
    """One entry of a ``results.json``, with the folder it lives in."""

    root: Path
    record: dict[str, Any]
    cci: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float | None = None  # from the run's timing.json (older run dirs: the record)

    def __post_init__(self) -> None:
        if self.wall_seconds is None:
            self.wall_seconds = self.record.get("wall_seconds")

    @property
    def method(self) -> str:
        return str(self.record["method"])

    @property
    def dir(self) -> Path:
        return self.root / self.record["dir"]


def load_runs(run_dirs: Sequence[str | Path]) -> list[Run]:
    """Read every run of every run dir (its ``results.json`` and, where present, ``cci.json``)."""
    runs: list[Run] = []
    for run_dir in map(Path, run_dirs):
        results_path = run_dir / "results.json"
        if not results_path.is_file():
            raise DataError("not a run dir (no results.json)", path=run_dir)
        results = read_json(results_path)
        if not isinstance(results, dict) or not isinstance(results.get("runs", []), list):
            raise DataError("not a results file (no list of runs)", path=results_path)
        for record in results.get("runs", []):
            run = Run(root=run_dir, record=record)
            path_inside(run_dir, str(record.get("dir", "")))  # a run's files are inside its run dir
            cci_path = run.dir / "cci.json"
            if cci_path.is_file():
                run.cci = read_json(cci_path)
            timing_path = run.dir / "timing.json"
            if timing_path.is_file():
                run.wall_seconds = read_json(timing_path).get("wall_seconds")
            runs.append(run)
    return runs


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation of the defined values (``None`` ignored), and their count."""
    defined = [float(v) for v in values if v is not None]
    if not defined:
        return None, None, 0
    std = statistics.stdev(defined) if len(defined) > 1 else 0.0
    return statistics.fmean(defined), std, len(defined)


def frozen_components(run: Run) -> list[Any]:
    """What was frozen while training the last task (empty for methods that freeze nothing)."""
    return list(run.cci[-1].get("frozen", [])) if run.cci else []


def tied_share(runs: Sequence[Run]) -> float | None:
    """The share of CCI's voting examples whose vote was split by a tie, over every transition of
    ``runs`` (``None`` for methods without CCI)."""
    entries = [e for run in runs for e in run.cci if "n_tied" in e and e.get("n_used")]
    if not entries:
        return None
    return sum(e["n_tied"] for e in entries) / sum(e["n_used"] for e in entries)


def summarize(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per method: mean ± std of each lifelong metric over all its runs (seeds × orders)."""
    by_method: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_method[run.method].append(run)
    rows = []
    for method, method_runs in by_method.items():
        row: dict[str, Any] = {"method": method, "n_runs": len(method_runs)}
        for metric in METRICS:
            mean, std, n = mean_std([r.record["metrics"].get(metric) for r in method_runs])
            row[metric] = {"mean": mean, "std": std, "n": n}
        row["frozen"] = [frozen_components(r) for r in method_runs if r.cci]
        row["cci_tied_share"] = tied_share(method_runs)
        row["wall_seconds"] = mean_std([r.wall_seconds for r in method_runs])[0]
        rows.append(row)
    return rows


def format_mean_std(cell: dict[str, Any]) -> str:
    if cell["mean"] is None:
        return "—"
    if cell["n"] > 1:
        return f"{cell['mean']:.1f} ± {cell['std']:.1f}"
    return f"{cell['mean']:.1f}"


def format_frozen(frozen_per_run: list[list[Any]]) -> str:
    if not frozen_per_run:
        return "—"
    unique = {json.dumps(f) for f in frozen_per_run}
    if len(unique) == 1:
        return _components_text(frozen_per_run[0])
    return f"{len(unique)} different sets (see cci.json)"


def _components_text(components: list[Any]) -> str:
    if not components:
        return "nothing"
    if isinstance(components[0], list):
        return ", ".join(f"b{b}h{h}" for b, h in components)
    return ", ".join(f"block {b}" for b in components)


def comparison_table(rows: Sequence[dict[str, Any]]) -> Any:
    """A rich table of the summary rows (ACC, BWT, FWT, forgetting in %, frozen components)."""
    from rich.table import Table

    n_runs = max((row["n_runs"] for row in rows), default=0)
    title = "Lifelong metrics (%)" + (f", mean ± std over {n_runs} runs" if n_runs > 1 else "")
    table = Table(title=title)
    table.add_column("method")
    for metric in METRICS:
        table.add_column(metric.upper() if metric != "forgetting" else "Forgetting", justify="right")
    table.add_column("frozen while training the last task")
    for row in rows:
        table.add_row(
            row["method"], *(format_mean_std(row[m]) for m in METRICS), format_frozen(row["frozen"])
        )
    return table


def paired_comparisons(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Each method against ``lamol`` and against its random control, paired by (seed, order)."""
    from rational_lamol.registry import random_controls
    from rational_lamol.stats import comparisons

    return comparisons([{**run.record, "run_dir": str(run.root)} for run in runs], random_controls())


def _fmt_diff(row: dict[str, Any]) -> tuple[str, str, str, str]:
    if row["mean_difference"] is None:
        return "—", "—", "—", "—"
    low, high = row["ci95"]
    p = row["sign_test_p"]
    return (f"{row['mean_difference']:+.1f}", f"[{low:+.1f}, {high:+.1f}]",
            f"{row['wins']}/{row['losses']}/{row['ties']}", "—" if p is None else f"{p:.3g}")


def comparisons_table(rows: Sequence[dict[str, Any]]) -> Any:
    """A rich table of the paired differences (method − reference, percentage points)."""
    from rich.table import Table

    table = Table(title="Paired differences over (seed, order) (points; 95% bootstrap CI; sign test)")
    for name in ("method", "against", "metric", "pairs", "mean diff", "95% CI", "wins/losses/ties", "p"):
        table.add_column(name, justify="left" if name in ("method", "against", "metric") else "right")
    for row in rows:
        table.add_row(row["method"], row["against"], row["metric"].upper(), str(row["n_pairs"]), *_fmt_diff(row))
    return table


# ---------------------------------------------------------------- pseudo-sample quality


def pseudo_quality_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per replaying stage of every run: its pseudo-sample counts (``quality.total`` of
    the stage's ``pseudo`` statistics, per task under ``by_task``) and whether it is flagged.
    Stages recorded before these counts existed have no row."""
    rows = []
    for run in runs:
        for number, stage in enumerate(run.record.get("stages") or [], 1):
            quality = (stage.get("pseudo") or {}).get("quality")
            if quality:
                rows.append({"run_dir": str(run.root), "method": run.method, "seed": run.record["seed"],
                             "order": run.record["order"], "stage": number, "dir": stage.get("dir"),
                             **quality["total"], "by_task": quality["by_task"], "flagged": is_flagged(quality["total"])})
    return rows


def pseudo_quality_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, stage number): the stages' samples pooled, and how many stages are flagged."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["stage"])].append(row)
    return [{"method": method, "stage": stage, "n_runs": len(group), "n_flagged": sum(r["flagged"] for r in group),
             **pooled(group)} for (method, stage), group in groups.items()]


def pseudo_quality_warnings(summary: Sequence[dict[str, Any]]) -> list[str]:
    """One line per (method, stage) where most samples of some run's stage are not well-formed."""
    return [f"{row['method']} stage {row['stage']}: most pseudo-samples are not well-formed in {row['n_flagged']} "
            f"of {row['n_runs']} run(s); pooled: {describe(row)}" for row in summary if row["n_flagged"]]


def _quality_cells(row: dict[str, Any]) -> list[str]:
    n = row["generated"]

    def share(count: int) -> str:
        return f"{count / n:.0%}" if n else "—"

    return [row["method"], str(row["stage"]), str(row["n_runs"]), str(n), share(row["parsed"]), share(row["kept"]),
            share(row["well_formed"]), main_problems(row) or "—", f"{row['n_flagged']}/{row['n_runs']}"]


_QUALITY_HEAD = ("method", "stage", "runs", "samples", "parsed", "kept", "well-formed", "main problems", "flagged")


def pseudo_quality_table(summary: Sequence[dict[str, Any]]) -> Any:
    """A rich table of the pooled pseudo-sample counts (shares of the generated samples)."""
    from rich.table import Table

    table = Table(title="Pseudo-samples (share of generated; flagged: stages with most not well-formed)")
    for name in _QUALITY_HEAD:
        table.add_column(name, justify="left" if name in ("method", "main problems") else "right")
    for row in summary:
        table.add_row(*_quality_cells(row))
    return table


# ---------------------------------------------------------------- CCI from other rationales


def rationale_agreement(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Per (method, other rationale source): over the transitions recorded with ``compare_with``,
    how often CCI from the other source chose the same components, and the mean overlap (the
    share of the chosen components both choose) and Jaccard index, each beside its chance level
    (the other choice drawn at random, as many components: :func:`rational.chance_agreement`)."""
    from rational_lamol.rational import chance_agreement

    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        for entry in run.cci:
            other = entry.get("comparison")
            if other:
                groups[(run.method, str(other["rationale_source"].get("source")))].append(other)
    rows = []
    for (method, source), group in sorted(groups.items()):
        chance = [chance_agreement(_component_count(o["votes"]), o["size"], len(o["chosen"])) for o in group]
        rows.append({"method": method, "compared_with": source, "transitions": len(group),
                     "same_choice": sum(o["same"] for o in group),
                     "same_rate": round(sum(o["same"] for o in group) / len(group), 4),
                     "mean_overlap": round(statistics.fmean(o["overlap"] / o["size"] if o["size"] else 1.0 for o in group), 4),
                     "mean_jaccard": round(statistics.fmean(o["jaccard"] for o in group), 4),
                     "chance_same_rate": round(statistics.fmean(c["same"] for c in chance), 6),
                     "chance_overlap": round(statistics.fmean(c["overlap"] for c in chance), 4),
                     "chance_jaccard": round(statistics.fmean(c["jaccard"] for c in chance), 4)})
    return rows


def _component_count(votes: list[Any]) -> int:
    """Components CCI voted over: blocks (a flat list) or heads (a list per block)."""
    return sum(len(row) if isinstance(row, list) else 1 for row in votes)


def rationale_agreement_table(rows: Sequence[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="CCI's choice from the other rationale source (compare_with), same examples and models; "
                        "chance: the other choice drawn at random, as many components")
    for name in ("method", "other source", "transitions", "same choice (chance)", "mean overlap (chance)",
                 "mean Jaccard (chance)"):
        table.add_column(name, justify="left" if name in ("method", "other source") else "right")
    for row in rows:
        table.add_row(row["method"], row["compared_with"], str(row["transitions"]),
                      f"{row['same_choice']} ({row['same_rate']:.0%}; {row['chance_same_rate']:.2g})",
                      f"{row['mean_overlap']:.2f} ({row['chance_overlap']:.2f})",
                      f"{row['mean_jaccard']:.2f} ({row['chance_jaccard']:.2f})")
    return table


def task_baseline_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Per task: the label baselines of its run dir (``task_baselines.json``, the first run dir that
    has one) and each method's mean final accuracy on it (after the last task of the order)."""
    baselines: dict[str, dict[str, Any]] = {}
    for rows in _task_baselines_by_root(runs).values():
        for task, row in rows.items():
            baselines.setdefault(task, row)
    finals: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        order, matrix = run.record.get("order") or [], run.record.get("score_matrix") or []
        if matrix:
            for task, score in zip(order, matrix[-1], strict=False):
                finals[(task, run.method)].append(float(score))
    methods = list(dict.fromkeys(run.method for run in runs))
    return [{"task": task, **row,
             "final_accuracy": {m: round(statistics.fmean(finals[(task, m)]), 2) for m in methods if finals[(task, m)]}}
            for task, row in baselines.items()]


def _task_baselines_by_root(runs: Sequence[Run]) -> dict[Path, dict[str, dict[str, Any]]]:
    from rational_lamol.task_baselines import FILE_NAME

    return {root: read_json(root / FILE_NAME) for root in dict.fromkeys(run.root for run in runs)
            if (root / FILE_NAME).is_file()}


def unlearned_tasks(runs: Sequence[Run], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Every (run, task) whose score right after training it (the score matrix's diagonal) is not
    above the task's majority class: a guesser at the majority rate gets as many of the test
    examples right with probability ``p >= alpha`` (one-sided binomial test). Such a task was never
    learned, so what a method keeps or forgets of it says nothing. Needs the run dir's
    ``task_baselines.json``; ``multitask`` (one row) is left out."""
    from rational_lamol.stats import binomial_upper_tail

    baselines = _task_baselines_by_root(runs)
    rows = []
    for run in runs:
        order, matrix = run.record.get("order") or [], run.record.get("score_matrix") or []
        if len(matrix) != len(order) or run.root not in baselines:
            continue
        for position, task in enumerate(order):
            base = baselines[run.root].get(task)
            if base is None:
                continue
            score, n = float(matrix[position][position]), int(base["n_test"])
            p = binomial_upper_tail(round(score * n / 100), n, float(base["majority"]) / 100)
            if p >= alpha:
                rows.append({"run_dir": str(run.root), "method": run.method, "seed": run.record["seed"],
                             "order": order, "task": task, "position": position + 1, "score": score,
                             "majority": float(base["majority"]), "n_test": n, "p": round(p, 4)})
    return rows


def unlearned_warnings(rows: Sequence[dict[str, Any]], runs: Sequence[Run]) -> list[str]:
    """One line per method with unlearned tasks: how many of its runs, and the lowest such score."""
    n_runs = Counter(run.method for run in runs)
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_method[row["method"]].append(row)
    lines = []
    for method, group in by_method.items():
        worst = min(group, key=lambda r: r["score"] - r["majority"])
        runs_hit = len({(r["run_dir"], r["seed"], tuple(r["order"])) for r in group})
        lines.append(f"{method}: {runs_hit} of {n_runs[method]} run(s) left a task no better than its majority class "
                     f"right after training it; e.g. {worst['task']} (task {worst['position']} of "
                     f"{' -> '.join(worst['order'])}, seed {worst['seed']}): {worst['score']:.1f} vs majority "
                     f"{worst['majority']:.1f}")
    return lines


def _task_baseline_cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the per-task baseline table (the terminal's and the HTML report's)."""
    methods = list(dict.fromkeys(m for row in rows for m in row["final_accuracy"]))
    header = ["task", "train", "test", "majority", "TF-IDF LR", *methods]
    cells = [[row["task"], str(row["n_train"]), str(row["n_test"]), f"{row['majority']:.1f}", f"{row['tfidf_logreg']:.1f}",
              *(f"{row['final_accuracy'][m]:.1f}" if m in row["final_accuracy"] else "—" for m in methods)]
             for row in rows]
    return header, cells


def task_baselines_table(rows: Sequence[dict[str, Any]]) -> Any:
    from rich.table import Table

    header, cells = _task_baseline_cells(rows)
    table = Table(title="Per task: test accuracy of the labels alone (majority, TF-IDF) and each method's final accuracy (mean)")
    for name in header:
        table.add_column(name, justify="left" if name == "task" else "right")
    for row in cells:
        table.add_row(*row)
    return table


# ---------------------------------------------------------------- figures


def _png_data_uri(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def heatmap(
    matrix: Sequence[Sequence[float]],
    *,
    title: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    xlabel: str,
    ylabel: str,
    fmt: str = "{:.0f}",
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
) -> str:
    """A labelled heatmap as a PNG data URI (values written in the cells when the grid is small)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.asarray(matrix, dtype=float)
    height = max(2.2, 0.45 * values.shape[0] + 1.2)
    width = max(3.0, 0.45 * values.shape[1] + 2.0)
    figure, axis = plt.subplots(figsize=(min(width, 14), min(height, 10)))
    image = axis.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_xticks(range(values.shape[1]), col_labels, rotation=45 if values.shape[1] > 6 else 0)
    axis.set_yticks(range(values.shape[0]), row_labels)
    if values.size <= 64:
        for (i, j), value in np.ndenumerate(values):
            axis.text(j, i, fmt.format(value), ha="center", va="center", color="white", fontsize=8)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    return _png_data_uri(figure)


def score_matrix_uri(run: Run) -> str:
    order = run.record["order"]
    matrix = run.record["score_matrix"]
    rows = ["all tasks"] if len(matrix) == 1 else [f"after {t}" for t in order]
    return heatmap(
        matrix,
        title=f"{run.method} (seed {run.record['seed']}): exact match %",
        row_labels=rows,
        col_labels=order,
        xlabel="evaluated task",
        ylabel="trained up to",
        vmin=0,
        vmax=100,
    )


def cci_scores_uri(entry: dict[str, Any]) -> str | None:
    """Heatmap of the mean CCI scores of one transition (blocks, or blocks × heads); lower = more plastic."""
    scores = entry.get("scores_mean")
    if not scores:
        return None
    grid = scores if isinstance(scores[0], list) else [[s] for s in scores]
    return heatmap(
        grid,
        title=f"CCI {entry['level']} scores, {entry['from_task']} → {entry['to_task']} (low = forgot most)",
        row_labels=[str(b) for b in range(len(grid))],
        col_labels=[str(h) for h in range(len(grid[0]))] if len(grid[0]) > 1 else ["block"],
        xlabel="head" if len(grid[0]) > 1 else "",
        ylabel="block",
        fmt="{:.2f}",
        cmap="magma",
    )


# ---------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}.figs{display:flex;flex-wrap:wrap;gap:1rem}
.figs img{max-width:520px}.rat{line-height:1.7;border:1px solid #eee;padding:.5rem;margin:.5rem 0}
.sel{background:#ffe066}.gold{border-bottom:2px solid #2a9d8f}.def{color:#555;font-size:.9em}
"""


def _summary_html(rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{m}</th>" for m in ("method", *METRICS, "runs", "frozen (last task)"))
    body = ""
    for row in rows:
        cells = [html.escape(row["method"])] + [format_mean_std(row[m]) for m in METRICS]
        cells += [str(row["n_runs"]), html.escape(format_frozen(row["frozen"]))]
        body += "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    definitions = "".join(
        f"<li><b>{m}</b>: {html.escape(METRIC_DEFINITIONS[m])}</li>" for m in METRICS
    )
    return f"<table><tr>{head}</tr>{body}</table><ul class='def'>{definitions}</ul>"


def _rationale_samples_html(samples: Sequence[dict[str, Any]]) -> str:
    parts = []
    for sample in samples:
        words = sample["words"]
        predicted = sample.get("predicted") or [0] * len(words)
        gold = sample.get("gold") or [0] * len(words)
        spans = []
        for word, p, g in zip(words, predicted, gold, strict=False):
            classes = " ".join(c for c, on in (("sel", p), ("gold", g)) if on)
            spans.append(f"<span class='{classes}'>{html.escape(word)}</span>" if classes else html.escape(word))
        query = f"<br><i>query: {html.escape(sample['query'])}</i>" if sample.get("query") else ""
        parts.append(
            f"<div class='rat'><b>{html.escape(sample['task'])}</b> — label "
            f"<b>{html.escape(str(sample.get('label', '')))}</b>{query}<br>{' '.join(spans)}</div>"
        )
    legend = "<p><span class='sel'>selected rationale</span> · <span class='gold'>planted/human rationale</span></p>"
    return legend + "".join(parts)


def _comparisons_html(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("method", "against", "metric", "pairs", "mean diff", "95% CI",
                                                "wins/losses/ties", "sign test p"))
    body = ""
    for row in rows:
        cells = [row["method"], row["against"], row["metric"].upper(), str(row["n_pairs"]), *_fmt_diff(row)]
        body += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
    note = ("<p class='def'>method − reference in percentage points, paired by (seed, order); interval: "
            "percentile bootstrap of the mean; p: two-sided exact sign test (ties dropped).</p>")
    return f"<h2>Paired differences</h2><table><tr>{head}</tr>{body}</table>{note}"


def _task_baselines_html(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    header, cells = _task_baseline_cells(rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
    return ("<h2>Tasks against their label baselines</h2><p>Test accuracy (%) of the majority training label and "
            "of a TF-IDF logistic regression on the same examples, beside each method's mean final accuracy.</p>"
            f"<table><tr>{head}</tr>{body}</table>")


def _pseudo_quality_html(summary: Sequence[dict[str, Any]]) -> str:
    if not summary:
        return ""
    head = "".join(f"<th>{h}</th>" for h in _QUALITY_HEAD)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _quality_cells(row)) + "</tr>"
                   for row in summary)
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in pseudo_quality_warnings(summary))
    note = ("<p class='def'>Shares of the generated samples; kept = replayed. Well-formed: one answer "
            "marker, EOS inside the window, a known answer and a context beyond the prompt "
            "(docs/algorithms.md §1). Flagged: stages where most samples are not well-formed.</p>")
    return (f"<h2>Pseudo-samples</h2><table><tr>{head}</tr>{body}</table>{note}"
            + (f"<ul><b>Warnings</b>{warnings}</ul>" if warnings else ""))


def _unlearned_html(runs: Sequence[Run]) -> str:
    lines = unlearned_warnings(unlearned_tasks(runs), runs)
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return ("<h2>Tasks never learned</h2><ul>" + items + "</ul><p class='def'>A task's score right after "
            "training it is no better than its majority class (one-sided binomial test, p ≥ 0.05): what a "
            "method keeps or forgets of it says nothing.</p>")


def render_html(runs: Sequence[Run], *, title: str = "Rational LAMOL report") -> str:
    rows = summarize(runs)
    sections = [f"<h1>{html.escape(title)}</h1>", "<h2>Comparison</h2>", _summary_html(rows),
                _comparisons_html(paired_comparisons(runs)),
                _pseudo_quality_html(pseudo_quality_summary(pseudo_quality_rows(runs))),
                _task_baselines_html(task_baseline_rows(runs)), _unlearned_html(runs)]
    sections.append("<h2>Score matrices</h2><div class='figs'>")
    sections += [f"<img src='{score_matrix_uri(run)}'>" for run in runs]
    sections.append("</div>")
    cci_runs = [run for run in runs if run.cci]
    if cci_runs:
        sections.append("<h2>Critical component identification</h2>")
        for run in cci_runs:
            seed = html.escape(str(run.record["seed"]))
            sections.append(f"<h3>{html.escape(run.method)}, seed {seed}</h3><div class='figs'>")
            for entry in run.cci:
                uri = cci_scores_uri(entry)
                chosen = html.escape(_components_text(entry.get("chosen", [])))
                used, skipped = (html.escape(str(entry.get(k))) for k in ("n_used", "n_skipped"))
                caption = f"chose {chosen}; used {used} examples, skipped {skipped}"
                image = f"<img src='{uri}'>" if uri else ""
                sections.append(f"<figure>{image}<figcaption>{caption}</figcaption></figure>")
            sections.append("</div>")
    seen: set[Path] = set()
    for run in runs:
        samples_path = run.root / "rationale_samples.json"
        if samples_path.is_file() and run.root not in seen:
            seen.add(run.root)
            samples = read_json(samples_path)
            sections.append("<h2>Sample rationales</h2>" + _rationale_samples_html(samples))
    return f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>" + "\n".join(
        sections
    )


def write_report(run_dirs: Sequence[str | Path], out_html: str | Path) -> Path:
    """Build the HTML report of one or more run dirs (aggregating them) and write it atomically,
    with its numbers (summary rows, paired comparisons, pseudo-sample quality, agreement of CCI's
    choices across rationale sources, per-task label baselines) in a JSON file
    beside it."""
    runs = load_runs(run_dirs)
    if not runs:
        raise DataError("no runs recorded in results.json", path=run_dirs[0])
    out_html = Path(out_html)
    if out_html.is_dir():
        raise DataError("is a folder; --out needs an HTML file name", path=out_html)
    quality_rows = pseudo_quality_rows(runs)
    quality_summary = pseudo_quality_summary(quality_rows)
    write_json_atomic(out_html.with_suffix(".json"), {
        "summary": summarize(runs), "comparisons": paired_comparisons(runs),
        "pseudo_quality": {"stages": quality_rows, "summary": quality_summary,
                           "warnings": pseudo_quality_warnings(quality_summary)},
        "rationale_agreement": rationale_agreement(runs),
        "task_baselines": task_baseline_rows(runs),
        "unlearned": {"tasks": (unlearned := unlearned_tasks(runs)), "warnings": unlearned_warnings(unlearned, runs)},
    })
    page = render_html(runs)
    with atomic_file(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out_html
