"""The ``invrat`` command: train / rationalize / evaluate / show.

The CLI only parses and dispatches; every command is a call into the library.
Bad input ends in one line on stderr (``invrat: error: ...``) and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rationale_commons.errors import DataError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Invariant Rationalization (Chang et al., ICML 2020): unsupervised token rationales for labelled text.",
)


class Format(str, Enum):
    annotations = "annotations"
    results = "results"


def _one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataError, ValidationError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(f"invrat: error: {message}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("invrat: interrupted (a killed train continues with --resume)", err=True)
            raise typer.Exit(130) from None

    return wrapper


TextCol = Annotated[str | None, typer.Option("--text-column", help="Table column with the document text.")]
LabelCol = Annotated[str | None, typer.Option("--label-column", help="Table column with the label.")]
QueryCol = Annotated[str | None, typer.Option("--query-column", help="Table column with the query (pair tasks).")]
EnvCol = Annotated[str | None, typer.Option("--env-column", help="Table column with the environment.")]
IdCol = Annotated[str | None, typer.Option("--id-column", help="Table column with example ids.")]
RationaleCol = Annotated[str | None, typer.Option("--rationale-column", help="Table column with gold rationales.")]


def _columns(text: str | None, label: str | None, query: str | None, env: str | None, id_: str | None, rationale: str | None = None):
    from rationale_commons.loaders import ColumnMapping

    given = {"text": text, "label": label, "query": query, "env": env, "id": id_, "rationale": rationale}
    if all(v is None for v in given.values()):
        return None
    return ColumnMapping(**{k: v for k, v in given.items() if v is not None})


@app.command()
@_one_line_errors
def train(
    data: Annotated[str, typer.Argument(help="An ERASER folder, a table file/folder (jsonl/json/csv/tsv/parquet) or a datasets name.")],
    out: Annotated[Path, typer.Option("--out", help="Run dir to create (or continue with --resume).")],
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of InvRatConfig fields.")] = None,
    text_column: TextCol = None,
    label_column: LabelCol = None,
    query_column: QueryCol = None,
    env_column: EnvCol = None,
    id_column: IdCol = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its last finished epoch.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Override config.epochs.")] = None,
    restarts: Annotated[int | None, typer.Option(help="Override config.restarts.")] = None,
    environments: Annotated[str | None, typer.Option(help="auto | column | single | rule | infer.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | mps.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train InvRat on DATA's train split (val selects the model) and write RUN_DIR."""
    from rationale_commons.loaders import load_data

    from invrat.config import load_config
    from invrat.game import train_invrat

    cfg = load_config(config, epochs=epochs, restarts=restarts, environments=environments, device=device,
                      progress=False if quiet else None)
    if env_column and cfg.environments == "auto":
        cfg = cfg.model_copy(update={"environments": "column"})
    splits = load_data(data, _columns(text_column, label_column, query_column, env_column, id_column))
    run_dir = train_invrat(splits, cfg, out, resume=resume)
    selection = json.loads((run_dir / "selection.json").read_text(encoding="utf-8"))
    typer.echo(
        f"run dir {run_dir}: selected restart {selection['restart']} epoch {selection['epoch']} "
        f"(dev acc {selection['dev_acc']:.3f}, selection rate {selection['dev_selection_rate']:.3f})"
    )


@app.command()
@_one_line_errors
def rationalize(
    run_dir: Annotated[Path, typer.Argument(help="A run dir written by `invrat train`.")],
    data: Annotated[str, typer.Argument(help="Data to rationalize (same forms as train).")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL file.")],
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    format: Annotated[Format, typer.Option("--format", help="annotations (ERASER evidences) or results (ERASER scorer input).")] = Format.annotations,
    batch_size: Annotated[int | None, typer.Option(help="Inference batch size.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | mps.")] = None,
    text_column: TextCol = None,
    label_column: LabelCol = None,
    query_column: QueryCol = None,
    id_column: IdCol = None,
) -> None:
    """Write one ERASER line per example of DATA's split, in the input's order."""
    from rationale_commons.eraser_io import write_annotations
    from rationale_commons.runtime import write_jsonl_atomic

    from invrat.evaluate import split_examples
    from invrat.rationalize import Rationalizer, to_annotations, to_results

    model = Rationalizer(run_dir, device=device)  # checks the run dir before reading data
    examples = split_examples(data, split, _columns(text_column, label_column, query_column, None, id_column))
    rationales = model(examples, batch_size)
    if format == Format.annotations:
        write_annotations(out, to_annotations(examples, rationales))
    else:
        write_jsonl_atomic(out, to_results(rationales))
    selected = sum(sum(r.mask) for r in rationales) / max(1, sum(len(r.mask) for r in rationales))
    typer.echo(f"wrote {len(rationales)} {format.value} lines to {out} ({selected:.1%} of words selected)")


@app.command()
@_one_line_errors
def evaluate(
    predictions: Annotated[Path, typer.Argument(help="Results (or annotation) JSONL from `invrat rationalize`.")],
    gold: Annotated[str, typer.Option("--gold", help="Data with gold rationales (same forms as train).")],
    split: Annotated[str, typer.Option(help="The split the predictions are for.")] = "test",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every score here.")] = None,
    text_column: TextCol = None,
    label_column: LabelCol = None,
    query_column: QueryCol = None,
    id_column: IdCol = None,
    rationale_column: RationaleCol = None,
) -> None:
    """ERASER metrics (the ERASER scorer's numbers, as fractions)."""
    from rationale_commons.runtime import write_json_atomic

    from invrat.evaluate import evaluate_file

    report = evaluate_file(predictions, gold, split, _columns(text_column, label_column, query_column, None, id_column, rationale_column))
    for key, value in report["summary"].items():
        typer.echo(f"{key:>18}  {value:.4f}")
    if json_out is not None:
        write_json_atomic(json_out, report)


@app.command()
@_one_line_errors
def show(
    predictions: Annotated[Path, typer.Argument(help="Results (or annotation) JSONL.")],
    data: Annotated[str, typer.Option("--data", help="The data the predictions are for.")],
    html_out: Annotated[Path, typer.Option("--html", help="Output HTML file.")],
    split: Annotated[str, typer.Option(help="The split the predictions are for.")] = "test",
    limit: Annotated[int, typer.Option(help="At most this many documents.")] = 200,
    text_column: TextCol = None,
    label_column: LabelCol = None,
    query_column: QueryCol = None,
    id_column: IdCol = None,
    rationale_column: RationaleCol = None,
) -> None:
    """An HTML page with rationale tokens highlighted (gold beside them where present)."""
    from invrat.evaluate import read_predictions, split_examples
    from invrat.show import render_page, write_page

    results = read_predictions(predictions)
    examples = split_examples(data, split, _columns(text_column, label_column, query_column, None, id_column, rationale_column))
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
