"""Behaviour pinned before refactoring: tiny LAMOL / Rational LAMOL / control runs and a tiny InvRat
game give the scores, choices, metrics and run-dir files recorded in ``tests/pinned/*.json``.

A refactor must leave these unchanged; a deliberate change of behaviour regenerates them
(``PIN_UPDATE=1 pytest tests/test_pinned_behaviour.py``) and says why in its commit. Floating-point
results depend on the CPU's vector unit (torch picks kernels by it), so the pins apply on machines
with the capability they were recorded on and skip elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

PINNED = Path(__file__).parent / "pinned"
CAPABILITY = torch.backends.cpu.get_cpu_capability()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "run.log")


def _check(name: str, observed: dict) -> None:
    path = PINNED / f"{name}.json"
    observed = json.loads(json.dumps({"cpu_capability": CAPABILITY, **observed}))
    if os.environ.get("PIN_UPDATE"):
        path.write_text(json.dumps(observed, indent=1) + "\n", encoding="utf-8")
    pinned = json.loads(path.read_text(encoding="utf-8"))
    if pinned["cpu_capability"] != CAPABILITY:
        pytest.skip(f"pinned on {pinned['cpu_capability']} CPUs, this one is {CAPABILITY}")
    assert observed == pinned


def test_lamol_pipeline_is_pinned(tmp_path, monkeypatch):
    from rational_lamol.config import parse_config
    from rational_lamol.pipeline import run_experiment

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # the environment record, not the math
    tasks = ["sentiment", "topic", "pair"]
    config = parse_config({
        "name": "pinned",
        "model": {"source": "gpt2-scratch", "n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 400,
                  "max_length": 80, "dropout": 0.1},
        "tasks": [{"name": t, "data": f"synthetic:{t}", "max_train": 12, "max_val": 5, "max_test": 4}
                  for t in tasks],
        "methods": ["finetune", "lamol", "rational-block", "random-block", "rational-head", "random-head"],
        "method_options": {"rational-head": {"top_k": 2}},
        "training": {"epochs": 1, "lr": 5e-3, "batch_size": 4, "threads": 1, "gen_batch_size": 8, "gamma": 0.5},
    })
    out = tmp_path / "run"
    results = run_experiment(config, out)
    runs = {r["method"]: {"score_matrix": r["score_matrix"], "metrics": r["metrics"]} for r in results["runs"]}
    cci = {}
    for method in ("rational-block", "random-block", "rational-head", "random-head"):
        entries = json.loads((out / "-".join(tasks) / "seed0" / method / "cci.json").read_text())
        cci[method] = [{k: e.get(k) for k in ("chosen", "frozen", "votes", "n_used", "n_tied")} for e in entries]
    _check("lamol_tiny", {"runs": runs, "cci": cci, "files": _files(out)})


def test_invrat_game_is_pinned(tmp_path):
    from invrat import InvRatConfig, rationalize, train_invrat
    from rationale_commons.synthetic import make_task

    splits = make_task("sentiment", seed=0, n_train=48, n_val=12, n_test=10, doc_words=(8, 14))
    config = InvRatConfig(hidden_dim=8, embedding_dim=8, epochs=3, warmup_epochs=1, restarts=1, batch_size=16,
                          progress=False, num_threads=1, environments="rule", env_rule="hash", alpha=0.2,
                          selection="top_alpha")
    run_dir = train_invrat(splits, config, tmp_path / "run")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    keys = ("epoch", "dev_acc", "dev_loss", "dev_selection_rate", "train_loss_i", "train_loss_e")
    epochs = [{k: round(m[k], 6) if isinstance(m.get(k), float) else m.get(k) for k in keys} for m in metrics]
    masks = ["".join(map(str, r.mask)) for r in rationalize(run_dir, splits.test)]
    _check("invrat_tiny", {"epochs": epochs, "masks": masks, "files": _files(run_dir)})
