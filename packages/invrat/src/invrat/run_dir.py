"""The training run dir: the checks before training, the files it writes, and the checkpoint
a killed run resumes from (players, optimizers, RNG state, the epoch records and the kept model).

Files: ``config.json`` (resolved), ``vocab.json``, ``labels.json``, ``envs.json`` (policy, names,
counts), ``metrics.json`` (one record per epoch, rewritten atomically), ``model.safetensors`` (the
selected players), ``selection.json``, ``checkpoint.pt`` (everything needed to resume, written
after every epoch) and ``DONE`` once training finished.

Each epoch commits in one step: ``checkpoint.pt`` (atomic, holding the epoch records too) is
written first; ``model.safetensors``, ``selection.json`` and ``metrics.json`` follow from it, and a
resume rewrites them from the checkpoint, so a kill anywhere never records an epoch twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from invrat.config import InvRatConfig
from invrat.trained_run import read_run_config
from invrat.vocab import Vocab
from rationale_commons.errors import DataError
from rationale_commons.runtime import (
    atomic_file,
    load_tensors,
    read_json,
    run_dir_is_fresh,
    write_json_atomic,
)

#: Fields a resumed run may change: they do not change what is trained.
RUNTIME_ONLY = {"progress", "device", "num_threads", "eval_batch_size", "cache_dir"}


def is_finished(out_dir: Path, config: InvRatConfig) -> bool:
    """Whether the run dir holds a finished run that ``config`` asks nothing more of (no more epochs)."""
    return (out_dir / "DONE").is_file() and not _asks_more_epochs(out_dir, config)


def _asks_more_epochs(out_dir: Path, config: InvRatConfig) -> bool:
    return config.game.epochs > read_run_config(out_dir).game.epochs


def check_run_dir(out_dir: Path, resume: bool, config: InvRatConfig) -> dict | None:
    """Returns the checkpoint to resume from (or None to start fresh)."""
    if not resume:
        if not run_dir_is_fresh(out_dir):
            raise DataError("run dir exists and is not empty; pass --resume to continue it or choose a new --out", path=out_dir)
        return None
    if run_dir_is_fresh(out_dir):
        return None
    if not (out_dir / "config.json").is_file():
        raise DataError("not an invrat run dir (no config.json); cannot resume", path=out_dir)
    # a field added since the run was written counts as its default; flat keys of older runs load too
    saved, current = read_run_config(out_dir).flat(), config.flat()
    ignore = set(RUNTIME_ONLY)
    if config.model_selection.restarts == 1 and current["epochs"] >= saved["epochs"]:
        ignore.add("epochs")  # a single-restart run may be trained on for more epochs
    diff = sorted(k for k in current if k not in ignore and saved[k] != current[k])
    if diff:
        raise DataError(f"--resume with a different config (fields {diff}); use the run's own config.json", path=out_dir)
    ckpt = out_dir / "checkpoint.pt"
    if not ckpt.is_file():
        return None
    return load_tensors(ckpt)  # data only: a checkpoint never runs code


def start(out_dir: Path) -> None:
    """The run dir, unfinished (only after the config check: a refused run stays finished)."""
    (out_dir / "DONE").unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def finish(out_dir: Path) -> None:
    (out_dir / "DONE").write_text("ok\n", encoding="utf-8")


def write_run_files(
    out_dir: Path, config: InvRatConfig, *, fresh: bool, vocab: Vocab, labels: list[str], envs: dict[str, Any]
) -> None:
    """``config.json`` (always: a resumed run records more epochs when they were asked for) and, for a
    fresh run, the vocabulary, labels, environments and an empty ``metrics.json``."""
    write_json_atomic(out_dir / "config.json", json.loads(config.model_dump_json()))
    if fresh:
        vocab.save(out_dir / "vocab.json")
        write_json_atomic(out_dir / "labels.json", labels)
        write_json_atomic(out_dir / "envs.json", envs, indent=None)
        write_json_atomic(out_dir / "metrics.json", [])


def read_env_names(out_dir: Path) -> list[str]:
    """The environment of every training example, as the run first assigned them."""
    return read_json(out_dir / "envs.json")["per_example"]


def metrics_at_checkpoint(out_dir: Path, ckpt: dict) -> list[dict]:
    """The epoch records up to the checkpoint's epoch: the checkpoint's own copy (older checkpoints
    lack it: then metrics.json cut at that epoch, so a redone epoch is not recorded twice)."""
    if "metrics" in ckpt:
        return list(ckpt["metrics"])
    last = (ckpt["restart"], ckpt["epoch"])
    return [m for m in read_json(out_dir / "metrics.json") if (m["restart"], m["epoch"]) <= last]


def write_metrics(out_dir: Path, metrics: list[dict]) -> None:
    write_json_atomic(out_dir / "metrics.json", metrics)


def save_checkpoint(
    out_dir: Path, *, restart: int, epoch: int, step: int, players: nn.ModuleDict,
    opts: dict[str, torch.optim.Optimizer], best: dict | None, metrics: list[dict],
) -> None:
    """The commit point of an epoch: everything after it is derived from it (and redone on resume)."""
    atomic_torch_save(
        {"restart": restart, "epoch": epoch, "step": step, "players": players.state_dict(),
         "optimizers": {n: o.state_dict() for n, o in opts.items()}, "torch_rng": torch.get_rng_state(),
         "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "best": best,
         "metrics": metrics},
        out_dir / "checkpoint.pt",
    )


def restore_checkpoint(ckpt: dict, players: nn.ModuleDict, opts: dict[str, torch.optim.Optimizer]) -> tuple[int, int]:
    """Players, optimizers and RNG state as the checkpoint left them; returns (next epoch, step)."""
    players.load_state_dict(ckpt["players"])
    for name, opt in opts.items():
        opt.load_state_dict(ckpt["optimizers"][name])
    torch.set_rng_state(ckpt["torch_rng"])
    cuda_rng = ckpt.get("cuda_rng")  # dropout and noise draws on the GPU; only on as many GPUs as saved them
    if cuda_rng is not None and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    return ckpt["epoch"] + 1, ckpt["step"]


def atomic_torch_save(obj: object, path: Path) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def publish_selected(out_dir: Path, players: nn.ModuleDict, best: dict) -> None:
    """The selected players and their record (``model.safetensors``, then ``selection.json``)."""
    with atomic_file(out_dir / "model.safetensors") as tmp:
        save_file(_state_for_file(players), str(tmp))
    write_json_atomic(out_dir / "selection.json", best)


def _state_for_file(players: nn.ModuleDict) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in players.state_dict().items()}
