"""The ``rational-lamol`` command line: it parses and dispatches, nothing more.

``rational-lamol run [--config FILE.toml] [--out DIR] [--resume]`` runs every (order, seed,
method) of a config (the built-in synthetic demo when no config is given) and prints one table.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import typer
from rationale_commons.errors import DataError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="LAMOL / Rational LAMOL lifelong learning.")


@app.callback()
def main() -> None:
    """Lifelong language learning with LAMOL and Rational LAMOL."""


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
def run(
    config: Path = typer.Option(None, "--config", "-c", help="experiment TOML (default: the built-in synthetic demo)"),
    out: Path = typer.Option(None, "--out", "-o", help="run dir (default: runs/<name>-<time>)"),
    resume: bool = typer.Option(False, "--resume", help="continue a killed run in --out at its last finished task"),
) -> None:
    """Train every method of the config over its task orders and seeds; write the run dir."""
    from rational_lamol.config import builtin_config_path, load_config
    from rational_lamol.pipeline import run_experiment
    from rational_lamol.results import format_table

    try:
        cfg = load_config(config if config is not None else builtin_config_path("default"))
        if resume and out is None:
            raise DataError("--resume needs --out DIR (the run dir to continue)")
        out_dir = out or Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        from accelerate import PartialState

        setup_logging(out_dir, main_process=PartialState().is_main_process)
        logging.getLogger("rational_lamol").info("run dir: %s", out_dir)
        t0 = time.perf_counter()
        results = run_experiment(cfg, out_dir, resume=resume)
    except DataError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from accelerate import PartialState

    if PartialState().is_main_process:
        typer.echo(format_table(results["runs"]))
        typer.echo(f"\n{len(results['runs'])} run(s) in {time.perf_counter() - t0:.0f}s; results: {out_dir / 'results.json'}")


if __name__ == "__main__":
    app()
