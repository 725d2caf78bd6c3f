"""Fault injection: real runs (the CLI in a subprocess) killed with SIGKILL at chosen points, then
resumed with --resume; the final results must equal an uninterrupted run's.

The kill points are the documented test hook ``rationale_commons.runtime.fault_point``: with
``RATIONALE_FAULT=<pattern>`` set, a run kills itself (SIGKILL, no cleanup) at the first point
whose name matches, e.g. ``commit:<folder>`` (a save written but not yet renamed into place),
``stage-done:<method>:<i>`` (after stage i of a LAMOL run), ``invrat:epoch-saved:<restart>:<epoch>``
(between an epoch's checkpoint.pt and its metrics.json).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from tiny_configs import tiny_config_dict, write_toml

from invrat import train_invrat
from invrat.config import load_config as load_invrat_config
from invrat.recipe import recipe_config
from rational_lamol.config import load_config as load_lamol_config
from rational_lamol.pipeline import run_experiment
from rationale_commons.eraser_io import write_eraser
from rationale_commons.loaders import load_data
from rationale_commons.runtime import FAULT_ENV
from rationale_commons.synthetic import make_task

LAMOL_CONFIG = tiny_config_dict(name="tiny-faults", methods=["finetune", "lamol"])

INVRAT_TOML = """
hidden_dim = 6
embedding_dim = 6
epochs = 3
warmup_epochs = 1
restarts = 2
batch_size = 16
progress = false
num_threads = 1
"""


def cli(module: str, *args: object, fault: str | None = None) -> subprocess.CompletedProcess:
    """``python -m <module> args`` in a fresh process (killed by itself at ``fault``, when given)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def assert_killed(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def results_without_timings(out: Path) -> list[dict]:
    runs = json.loads((out / "results.json").read_text())["runs"]
    return [{k: r[k] for k in ("method", "seed", "order", "score_matrix", "baseline", "metrics")} for r in runs]


def same_tensors(a: Path, b: Path) -> bool:
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all((x[k] == y[k]).all() for k in x)


@pytest.mark.slow
def test_lamol_run_killed_during_a_save_and_after_a_stage_resumes_to_the_same_results(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    write_toml(config, LAMOL_CONFIG)
    ref, out = tmp_path / "ref", tmp_path / "out"
    run_experiment(load_lamol_config(config), ref)  # the uninterrupted run (in this process: faster)

    # 1. killed while the shared task-1 model is being saved (written, not yet renamed into place)
    assert_killed(cli("rational_lamol.cli", "run", "--config", config, "--out", out, fault="commit:sentiment_seed0_*"))
    task1 = out / "_shared" / "task1"
    assert [p.name for p in task1.iterdir() if not p.name.startswith(".")] == []  # no folder a resume trips on
    assert any(p.name.endswith(f".tmp-{p.name.rsplit('-', 1)[-1]}") for p in task1.iterdir())

    # 2. resumed, and killed again after lamol's first stage (which reused the redone task-1 model)
    assert_killed(cli("rational_lamol.cli", "run", "--config", config, "--out", out, "--resume",
                      fault="stage-done:lamol:1"))
    assert [p.name for p in task1.iterdir()] == [p.name for p in (ref / "_shared" / "task1").iterdir()]
    lamol = next(out.glob("*/seed0/lamol"))
    assert len(json.loads((lamol / "progress.json").read_text())["stages"]) == 1

    # 3. resumed to the end: the same scores and the same final models as the uninterrupted run
    done = cli("rational_lamol.cli", "run", "--config", config, "--out", out, "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert results_without_timings(out) == results_without_timings(ref)
    for model in ref.glob("*/seed0/*/2_*/model/model.safetensors"):
        assert same_tensors(model, out / model.relative_to(ref))
    assert not list(out.rglob(".*.tmp-*")), "a temporary folder outlived the run"


@pytest.mark.slow
def test_invrat_train_killed_during_a_save_and_between_checkpoint_and_metrics_resumes_to_the_same_run(
    tmp_path: Path,
) -> None:
    data = write_eraser(make_task("sentiment", seed=1, n_train=32, n_val=10, n_test=4, doc_words=(8, 12),
                                  polluted=True), tmp_path / "data")
    config = tmp_path / "tiny.toml"
    config.write_text(INVRAT_TOML, encoding="utf-8")
    ref, out = tmp_path / "ref", tmp_path / "out"
    splits = load_data(str(data))
    # the uninterrupted run, with the settings `invrat train` fills in (recipe.py)
    train_invrat(splits, recipe_config(load_invrat_config(config), splits.train), ref)

    # 1. killed while the first checkpoint.pt is being written: only its temporary file exists
    assert_killed(cli("invrat.cli", "train", data, "--out", out, "--config", config, fault="commit:checkpoint.pt"))
    assert not (out / "checkpoint.pt").exists() and list(out.glob(".checkpoint.pt.tmp-*"))
    # 2. resumed, killed after restart 1's first epoch is checkpointed but before metrics.json has it
    assert_killed(cli("invrat.cli", "train", data, "--out", out, "--config", config, "--resume",
                      fault="invrat:epoch-saved:1:0"))
    assert len(json.loads((out / "metrics.json").read_text())) == 3  # restart 0's epochs only
    # 3. resumed to the end: every epoch recorded once, the same records, selection and model
    done = cli("invrat.cli", "train", data, "--out", out, "--config", config, "--resume")
    assert done.returncode == 0, done.stderr[-2000:]

    def records(run: Path) -> list[tuple]:
        return [(m["restart"], m["epoch"], m["step"], m["dev_acc"], m["dev_loss"], m["dev_selection_rate"])
                for m in json.loads((run / "metrics.json").read_text())]

    assert records(out) == records(ref)
    assert len({(r[0], r[1]) for r in records(out)}) == len(records(out)) == 6
    assert json.loads((out / "selection.json").read_text()) == json.loads((ref / "selection.json").read_text())
    assert same_tensors(out / "model.safetensors", ref / "model.safetensors")
    assert not list(out.glob(".*.tmp-*"))
