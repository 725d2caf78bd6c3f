"""The ``invrat`` command: train / rationalize / evaluate / show.

The CLI only parses and dispatches; every command is a call into the library.
Bad input and OS errors (disk full, permission denied, ...) end in one line on stderr
(``invrat: error: ...``) and exit code 2 (:mod:`rationale_commons.cli_errors`).
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from invrat.evaluate import RANDOM_DRAWS, split_name
from rationale_commons.cli_errors import one_line_errors
from rationale_commons.errors import DataError
from rationale_commons.loaders import ColumnMapping, SplitColumns
from rationale_commons.records import SPLIT_NAMES

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Invariant Rationalization (Chang et al., ICML 2020): unsupervised token rationales for labelled text.",
)


class Format(str, Enum):
    annotations = "annotations"
    results = "results"


_one_line_errors = one_line_errors("invrat", interrupted="a killed train continues with --resume")


_COLUMN_HELP = {
    "text": "Table column with the document text.",
    "label": "Table column with the label.",
    "query": "Table column with the query (pair tasks).",
    "env": "Table column with the environment.",
    "id": "Table column with example ids.",
    "rationale": "Table column with gold rationales.",
}


def _with_columns(*fields: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the ``--<field>-column`` options of ``fields`` and ``--split-column``, in place
    of its ``columns`` parameter, and call it with their mapping (one ``ColumnMapping``, one per split
    when ``--split-column`` is given, None when no option is): one definition of the column options
    for every command that reads data."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            inspect.Parameter(
                f"{f}_column",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=Annotated[str | None, typer.Option(f"--{f}-column", help=_COLUMN_HELP[f])],
            )
            for f in fields
        ] + [
            inspect.Parameter(
                "split_column",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=Annotated[list[str] | None, typer.Option(
                    "--split-column", help="SPLIT:FIELD=COLUMN, a column of one split only (e.g. test:text=body); repeatable.")],
            )
        ]
        signature = inspect.signature(fn, eval_str=True)
        params = [
            q for p in signature.parameters.values() for q in (options if p.name == "columns" else [p])
        ]

        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            columns = _columns({f: kwargs.pop(f"{f}_column") for f in fields}, kwargs.pop("split_column"))
            return fn(*args, columns=columns, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=params)  # what typer reads
        return wrapper

    return decorate


def _columns(given: dict[str, str | None], split_columns: list[str] | None) -> SplitColumns:
    base = {k: v for k, v in given.items() if v is not None}
    if not split_columns:
        return ColumnMapping(**base) if base else None
    per_split = {split: dict(base) for split in SPLIT_NAMES}
    for item in split_columns:
        split, sep, assignment = item.partition(":")
        field, eq, column = assignment.partition("=")
        if not sep or not eq or not column or field not in given:
            raise DataError(f"--split-column {item!r}: expected SPLIT:FIELD=COLUMN with FIELD one of {', '.join(given)}")
        per_split[split_name(split)][field] = column
    return {split: ColumnMapping(**mapping) for split, mapping in per_split.items()}


@app.command()
@_one_line_errors
@_with_columns("text", "label", "query", "env", "id")
def train(
    data: Annotated[str, typer.Argument(help="An ERASER folder, a table file/folder (jsonl/json/csv/tsv/parquet) or a datasets name.")],
    out: Annotated[Path, typer.Option("--out", help="Run dir to create (or continue with --resume).")],
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of InvRatConfig fields.")] = None,
    columns: SplitColumns = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its last finished epoch; with a larger --epochs, train a finished single-restart run on.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Override config.game.epochs.")] = None,
    restarts: Annotated[int | None, typer.Option(help="Override config.model_selection.restarts.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override config.game.seed (restart k uses seed + k).")] = None,
    environments: Annotated[str | None, typer.Option(help="auto | column | single | rule | infer.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | mps.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads (config.runtime.num_threads).")] = None,
    train_split: Annotated[str, typer.Option("--train-split", help="The split to train on (val selects the model unless it is this split).")] = "train",
    max_examples: Annotated[int | None, typer.Option("--max-examples", min=1, help="At most the first N examples of each split.")] = None,
    skip_missing_docs: Annotated[bool, typer.Option("--skip-missing-docs", help="ERASER: leave out annotations whose document is missing (a warning counts them).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train InvRat on DATA's train split (val selects the model) and write RUN_DIR.

    Keys the config leaves unset get the recipe for new data (invrat/recipe.py): top-alpha selection
    in training and output, no logistic noise, alpha from the median document length, and frozen
    GloVe vectors (glove_package) for real text when invrat[glove] is installed."""
    from invrat.config import load_config
    from invrat.data import train_and_dev
    from invrat.data_spec import DataSpec, save_spec
    from invrat.game import train_invrat
    from invrat.recipe import kept_model_warnings, recipe_config

    cfg = load_config(config, epochs=epochs, restarts=restarts, seed=seed, environments=environments, device=device,
                      num_threads=threads, progress=False if quiet else None)
    spec = DataSpec.of(columns, train_split=train_split, skip_missing_docs=skip_missing_docs, max_examples=max_examples)
    splits = spec.load(data)
    cfg = recipe_config(cfg, splits.train)
    if any(m.env for m in spec.columns.values()) and cfg.environments.policy == "auto":
        cfg = cfg.model_copy(update={"environments": "column"})
    run_dir = train_invrat(splits, cfg, out, resume=resume)
    save_spec(run_dir, spec)
    selection = json.loads((run_dir / "selection.json").read_text(encoding="utf-8"))
    typer.echo(
        f"run dir {run_dir}: selected restart {selection['restart']} epoch {selection['epoch']} "
        f"(dev acc {selection['dev_acc']:.3f}, selection rate {selection['dev_selection_rate']:.3f}"
        + (f", dev objective {selection['dev_objective']:.3f}" if cfg.experimental.select_by == "invariance" else "")
        + f"; alpha {cfg.game.alpha}, selection {cfg.game.selection}, embedding {cfg.players.embedding})"
    )
    for warning in kept_model_warnings(selection, train_and_dev(splits, cfg.game.seed)[1]):
        typer.echo(f"invrat: warning: {warning}", err=True)


@app.command()
@_one_line_errors
@_with_columns("text", "label", "query", "id")
def rationalize(
    run_dir: Annotated[Path, typer.Argument(help="A run dir written by `invrat train`.")],
    data: Annotated[str, typer.Argument(help="Data to rationalize (same forms as train).")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL file.")],
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    format: Annotated[Format, typer.Option("--format", help="annotations (ERASER evidences) or results (ERASER scorer input).")] = Format.annotations,
    batch_size: Annotated[int | None, typer.Option(help="Inference batch size.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | mps.")] = None,
    selection: Annotated[str | None, typer.Option(help="threshold | top_alpha (default: the run's config).")] = None,
    columns: SplitColumns = None,
) -> None:
    """Write one ERASER line per example of DATA's split, in the input's order (read with the run's
    column mapping unless column options are given)."""
    from invrat.data_spec import read_split
    from invrat.rationalize import Rationalizer, to_annotations, to_results
    from rationale_commons.eraser_io import write_annotations
    from rationale_commons.runtime import write_jsonl_atomic

    model = Rationalizer(run_dir, device=device, selection=selection)  # checks the run dir before reading data
    examples = read_split(data, split, columns, run_dir)
    rationales = model(examples, batch_size)
    if format == Format.annotations:
        write_annotations(out, to_annotations(examples, rationales))
    else:
        write_jsonl_atomic(out, to_results(rationales))
    selected = sum(sum(r.mask) for r in rationales) / max(1, sum(len(r.mask) for r in rationales))
    typer.echo(f"wrote {len(rationales)} {format.value} lines to {out} ({selected:.1%} of words selected)")


@app.command()
@_one_line_errors
@_with_columns("text", "label", "query", "id", "rationale")
def evaluate(
    predictions: Annotated[Path, typer.Argument(help="Results (or annotation) JSONL from `invrat rationalize`.")],
    gold: Annotated[str, typer.Option("--gold", help="The data the predictions are for (same forms as train).")],
    split: Annotated[str, typer.Option(help="The split the predictions are for.")] = "test",
    run: Annotated[Path | None, typer.Option("--run", help="The run dir: read DATA with its column mapping, fit the TF-IDF baseline on its train split.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every score here.")] = None,
    random_draws: Annotated[int, typer.Option("--random-draws", help="Draws of the random selection: its mean, central 95% and p (the share of draws scoring at least invrat's).")] = RANDOM_DRAWS,
    columns: SplitColumns = None,
) -> None:
    """ERASER metrics (the ERASER scorer's numbers, as fractions) beside a random and a first-k selection
    of as many words, and label accuracy beside a full-text TF-IDF logistic regression and the majority class.
    The random selection is drawn --random-draws times: its mean, the central 95% of the draws, and p,
    the share of draws that score at least as high as the predictions (p = 0: none did)."""
    from invrat.data_spec import read_spec
    from invrat.evaluate import evaluate_file
    from invrat.trained_run import RUN_FILES
    from rationale_commons.runtime import write_json_atomic

    if run is not None and not all((run / f).is_file() for f in RUN_FILES):
        raise DataError("not an invrat run dir", path=run)
    spec = read_spec(run) if run is not None else None
    report = evaluate_file(
        predictions, gold, split, columns if columns is not None or spec is None else spec.columns,
        train_split=spec.train_split if spec else "train", max_train_examples=spec.max_examples if spec else None,
        skip_missing_docs=bool(spec and spec.skip_missing_docs), random_draws=random_draws,
    )
    for line in _report_lines(report):
        typer.echo(line)
    if json_out is not None:
        write_json_atomic(json_out, report)


def _report_lines(report: dict[str, Any]) -> list[str]:
    """The scores beside their baselines: a table of the rationale metrics, then the accuracies."""
    summary, baselines = report["summary"], report["baselines"]
    shown = [k for k in summary if k not in ("accuracy", "macro_f1")]
    spread = baselines.get("random_draws", {})
    lines = []
    if shown:
        lines.append(f"{'':>18}  {'invrat':>8}  {'random':>8}  {'random 95%':>15}  {'p':>5}  {'first_k':>8}")
        for key in shown:
            draws = spread.get(key, {})
            central = f"{draws['low']:.4f}-{draws['high']:.4f}" if draws else ""
            p = f"{draws['at_or_above']:.2f}" if "at_or_above" in draws else ""
            lines.append(f"{key:>18}  {summary[key]:8.4f}  {baselines['random'].get(key, float('nan')):8.4f}  {central:>15}  "
                         f"{p:>5}  {baselines['first_k'].get(key, float('nan')):8.4f}")
    for metric in ("accuracy", "macro_f1"):
        labels = [("invrat", summary.get(metric)), ("tf-idf logreg", baselines.get(f"tfidf_logreg_{metric}")),
                  ("majority", baselines.get(f"majority_{metric}"))]
        if any(v is not None for _, v in labels):
            lines.append(f"{metric}: " + " | ".join(f"{name} {v:.4f}" for name, v in labels if v is not None))
    return lines


@app.command()
@_one_line_errors
@_with_columns("text", "label", "query", "id", "rationale")
def show(
    predictions: Annotated[Path, typer.Argument(help="Results (or annotation) JSONL.")],
    data: Annotated[str, typer.Option("--data", help="The data the predictions are for.")],
    html_out: Annotated[Path, typer.Option("--html", help="Output HTML file.")],
    split: Annotated[str, typer.Option(help="The split the predictions are for.")] = "test",
    limit: Annotated[int, typer.Option(help="At most this many documents.")] = 200,
    columns: SplitColumns = None,
) -> None:
    """An HTML page with rationale tokens highlighted (gold beside them where present)."""
    from invrat.evaluate import read_predictions, split_examples
    from invrat.show import render_page, write_page

    results = read_predictions(predictions)
    examples = split_examples(data, split, columns)
    wanted = {str(r["annotation_id"]) for r in results}
    chosen = [ex for ex in examples if ex.id in wanted][:limit]
    if not chosen:
        raise DataError(f"no prediction matches an example of split {split!r}", path=predictions)
    write_page(html_out, render_page(chosen, results, title=f"invrat rationales: {predictions.name}"))
    typer.echo(f"wrote {html_out} ({len(chosen)} documents)")


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="invrat")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
