"""The ``rational-lamol`` command line: it parses and dispatches, nothing more.

``rational-lamol run [--config FILE.toml] [--out DIR] [--resume]`` runs every (order, seed,
method) of a config (the built-in synthetic demo when no config is given) and prints one table;
``cci`` and ``report`` call :mod:`rational_lamol.cci_saved` and :mod:`rational_lamol.report`. Bad
input and OS errors end in one line on stderr (``rational-lamol: error: ...``) and exit code 2
(:mod:`rationale_commons.cli_errors`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from enum import Enum
from pathlib import Path

import typer

from rationale_commons.cli_errors import one_line_errors
from rationale_commons.errors import DataError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LAMOL / Rational LAMOL lifelong learning.")


@app.callback()
def main() -> None:
    """Lifelong language learning with LAMOL and Rational LAMOL."""


_one_line_errors = one_line_errors("rational-lamol", interrupted="a killed run continues with run --resume")


def setup_logging(out_dir: Path, *, main_process: bool = True) -> None:
    logger = logging.getLogger("rational_lamol")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if not main_process:
        logger.addHandler(logging.NullHandler())
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(out_dir / "run.log", encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(fh)
    logger.addHandler(sh)


@app.command()
@_one_line_errors
def run(
    config: Path = typer.Option(None, "--config", "-c", help="experiment TOML (default: the built-in synthetic demo)"),
    out: Path = typer.Option(None, "--out", "-o", help="run dir (default: runs/<name>-<time>)"),
    resume: bool = typer.Option(False, "--resume", help="continue a killed run in --out at its last finished task"),
    model: str = typer.Option(None, "--model", "-m", help="model to use instead of the config's: hub id, folder or .gguf"),
    seeds: str = typer.Option(None, "--seeds", help="comma-separated seeds instead of the config's, e.g. 0,1,2"),
    methods: str = typer.Option(
        None, "--methods", help="comma-separated methods instead of the config's, e.g. finetune,lamol,multitask"
    ),
) -> None:
    """Train every method of the config over its task orders and seeds; write the run dir."""
    from rational_lamol.config import builtin_config_path, load_config
    from rational_lamol.pipeline import run_experiment
    from rational_lamol.results import format_table
    from rationale_commons.runtime import lock_run_dir

    cfg = load_config(config if config is not None else builtin_config_path("default"))
    cfg = _override(cfg, model=model, seeds=seeds, methods=methods)
    if resume and out is None:
        raise DataError("--resume needs --out DIR (the run dir to continue)")
    out_dir = out or Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    from rational_lamol.trainer import end_process_group, process_state

    main_process = process_state().is_main_process
    # the lock first: a second process must not even append to this run's log
    with lock_run_dir(out_dir) if main_process else contextlib.nullcontext():
        setup_logging(out_dir, main_process=main_process)
        logging.getLogger("rational_lamol").info("run dir: %s", out_dir)
        t0 = time.perf_counter()
        results = run_experiment(cfg, out_dir, resume=resume)
        if main_process:
            typer.echo(format_table(results["runs"], results.get("timings")))
            typer.echo(f"\n{len(results['runs'])} run(s) in {time.perf_counter() - t0:.0f}s; "
                       f"results: {out_dir / 'results.json'}")
            _print_comparison_and_report([out_dir], out_dir / "report.html")
    end_process_group()


def _override(cfg, *, model: str | None, seeds: str | None, methods: str | None = None):
    """The config with ``--model`` / ``--seeds`` / ``--methods`` applied (validated again as a whole)."""
    from rational_lamol.config import parse_config

    if model is None and seeds is None and methods is None:
        return cfg
    data = cfg.model_dump()
    if model is not None:
        source = model
        if not model.endswith(".gguf") and Path(model).exists():
            source = str(Path(model).resolve())
        elif model.endswith(".gguf"):
            source = str(Path(model).expanduser().resolve())
        data["model"]["source"] = source
    if seeds is not None:
        try:
            data["seeds"] = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise DataError(f"--seeds must be comma-separated integers, got {seeds!r}") from None
    if methods is not None:
        data["methods"] = [m.strip() for m in methods.split(",") if m.strip()]
    return parse_config(data, source="--model/--seeds/--methods")


def _print_comparison_and_report(run_dirs: list[Path], out_html: Path) -> Path:
    """The comparison table (mean ± std per method, frozen components) and the HTML report."""
    from rich.console import Console

    from rational_lamol.report import (
        comparison_table,
        comparisons_table,
        load_runs,
        paired_comparisons,
        pseudo_quality_rows,
        pseudo_quality_summary,
        pseudo_quality_table,
        pseudo_quality_warnings,
        rationale_agreement,
        rationale_agreement_table,
        summarize,
        task_baseline_rows,
        task_baselines_table,
        unlearned_tasks,
        unlearned_warnings,
        write_report,
    )

    runs = load_runs(run_dirs)
    console = Console()
    console.print(comparison_table(summarize(runs)))
    rows = paired_comparisons(runs)
    if rows:
        console.print(comparisons_table(rows))
    quality = pseudo_quality_summary(pseudo_quality_rows(runs))
    if quality:
        console.print(pseudo_quality_table(quality))
    for line in pseudo_quality_warnings(quality):
        typer.echo(f"warning: {line}")
    agreement = rationale_agreement(runs)
    if agreement:
        console.print(rationale_agreement_table(agreement))
    baselines = task_baseline_rows(runs)
    if baselines:
        console.print(task_baselines_table(baselines))
    for line in unlearned_warnings(unlearned_tasks(runs), runs):
        typer.echo(f"warning: {line}")
    path = write_report(run_dirs, out_html)
    typer.echo(f"report: {path}")
    return path


@app.command()
@_one_line_errors
def report(
    run_dirs: list[Path] = typer.Argument(..., help="run dir(s) (each with results.json); several are aggregated"),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file (default: RUN_DIR/report.html, or ./report.html); its numbers go to a .json beside it"),
) -> None:
    """Rebuild the comparison table and the HTML report from run dir(s), as mean ± std over runs."""
    target = out or (run_dirs[0] / "report.html" if len(run_dirs) == 1 else Path("report.html"))
    _print_comparison_and_report(list(run_dirs), target)


class _Level(str, Enum):
    block = "block"
    head = "head"


@app.command()
@_one_line_errors
def cci(
    old: Path = typer.Option(..., "--old", help="model before the new task (a save_pretrained folder)"),
    new: Path = typer.Option(..., "--new", help="model after it (a save_pretrained folder)"),
    data: str = typer.Option(..., "--data", help="the old task's data: ERASER folder, table file, synthetic:<name>"),
    rationales: str = typer.Option(..., "--rationales", help="'human' (the data's own) or an ERASER annotation JSONL"),
    split: str = typer.Option("val", "--split", help="train | val | test"),
    level: _Level = typer.Option(_Level.block, "--level", help="block or head"),
    top_k: int = typer.Option(12, "--top-k", min=1, help="head level: heads each example votes for / heads chosen"),
    n: int = typer.Option(200, "--n", min=1, help="examples used (the first n of the split)"),
    beta: float = typer.Option(20.0, "--beta", min=0.0, max=100.0, help="P_beta keeps the top beta %% of a row"),
    question: str = typer.Option(None, "--question", help="fixed question for single-input data"),
    max_length: int = typer.Option(None, "--max-length", min=16, help="window (default: the model's, at most 1024)"),
    json_out: Path = typer.Option(None, "--json", help="write {level, chosen, votes, n_used, n_skipped, ...} here"),
) -> None:
    """Critical component identification between two models on rationale-annotated data."""
    from rational_lamol.cci_saved import cci_between_saved, data_task_config

    task = data_task_config(data, rationales=rationales, question=question)
    result = cci_between_saved(old, new, task, split=split, level=level.value, top_k=top_k, n=n, beta=beta,
                               max_length=max_length)
    chosen = result["chosen"]
    what = ", ".join(f"block {c}" if level == _Level.block else f"block {c[0]} head {c[1]}" for c in chosen)
    typer.echo(f"chosen ({level.value}): {what or 'nothing (no example could vote)'}")
    typer.echo(f"examples used {result['n_used']}, skipped {result['n_skipped']} (rationale outside the window or absent)")
    typer.echo("votes per block" + (" (rows) and head (columns)" if level == _Level.head else "") + ":")
    rows = result["votes"] if level == _Level.head else [[v] for v in result["votes"]]
    for b, row in enumerate(rows):
        typer.echo(f"  block {b:>2}: " + " ".join(f"{v:>4}" for v in row))
    if json_out is not None:
        from rationale_commons.runtime import write_json_atomic

        write_json_atomic(json_out, result)
        typer.echo(f"written: {json_out}")


if __name__ == "__main__":
    app()
