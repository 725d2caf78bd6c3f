"""The tiny two-task LAMOL experiment that many tests run: a 1-block GPT-2 learning synthetic
sentiment, then topic, in seconds on one CPU thread; and its TOML form for the command line and the
benchmark scripts (``pythonpath = ["tests"]``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def tiny_config_dict(
    *,
    name: str = "tiny",
    methods: Sequence[str] = ("finetune", "lamol", "multitask"),
    max_train: int = 12,
    **training,
) -> dict:
    """The config as a dict; ``training`` overrides ``[training]``. With ``gamma = 0.5`` LAMOL
    replays ``max_train / 2`` pseudo-samples."""
    return {
        "name": name,
        "model": {"source": "gpt2-scratch", "n_layer": 1, "n_head": 2, "n_embd": 32, "vocab_size": 400,
                  "max_length": 80, "dropout": 0.0},
        "tasks": [
            {"name": task, "data": f"synthetic:{task}", "max_train": max_train, "max_val": 4, "max_test": 6}
            for task in ("sentiment", "topic")
        ],
        "methods": list(methods),
        "training": {"epochs": 1, "lr": 1e-3, "batch_size": 4, "threads": 1, "gen_batch_size": 8,
                     "gamma": 0.5, **training},
    }


def write_toml(path: Path, cfg: dict) -> Path:
    """A tiny config as TOML (flat enough to write by hand: JSON values are TOML values here)."""
    lines = [f"name = {json.dumps(cfg['name'])}", f"methods = {json.dumps(cfg['methods'])}", "[model]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in cfg["model"].items()]
    lines += ["[training]"] + [f"{k} = {json.dumps(v)}" for k, v in cfg["training"].items()]
    for task in cfg["tasks"]:
        lines += ["[[tasks]]"] + [f"{k} = {json.dumps(v)}" for k, v in task.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
