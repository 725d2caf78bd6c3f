"""The InvRat training game (Chang et al. 2020, §3.3; docs/algorithms.md §3).

Players are updated in turn following ``config.game.schedule`` (one player per batch, cycled: the
reference's 1 generator : 3 f_i : 3 f_e per 7 steps). Several restarts are trained; after every
epoch the players are judged on dev (dev_metrics.py) and the best (restart, epoch) is kept
(selection.py). The run dir, its checkpoint and resume are in run_dir.py; how one player learns
is in players.py. The run dir is locked for the whole of training (one process per dir).
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from invrat import run_dir
from invrat.cached_features import FrozenFeatures
from invrat.config import InvRatConfig
from invrat.data import Prepared, prepare, train_and_dev
from invrat.dev_metrics import evaluate_players
from invrat.embeddings import initial_embeddings
from invrat.encoder import ContextualWords
from invrat.environments import (
    dev_environments,
    environments_for,
    index_environments,
    places_unseen_examples,
    resolve_policy,
)
from invrat.model import build_players, is_query_aware
from invrat.players import optimizers, player_step
from invrat.recipe import resolve_predictor
from invrat.reference_envs import fit_reference_envs
from invrat.schedules import diff_weight, temperature
from invrat.selection import gap_weight, judge
from invrat.vocab import Vocab
from rationale_commons.errors import DataError
from rationale_commons.records import Example, Splits
from rationale_commons.runtime import choose_device, fault_point, lock_run_dir, seed_everything

log = logging.getLogger("invrat")

_NO_DEV_ENVS = (
    "select_by='invariance' needs an environment on every dev example (environments 'column' with an env on "
    "each dev example, or the 'hash' rule); use select_by='accuracy'"
)


def train_invrat(splits: Splits, config: InvRatConfig, out_dir: str | Path, *, resume: bool = False) -> Path:
    """Train InvRat on ``splits`` (train; val for selection) and write the run dir. Returns it.

    ``resume=True`` continues a killed run from its last finished epoch (a
    finished run returns at once, unless ``config.game.epochs`` grew: a single-restart run then trains
    on from its last epoch, and model selection goes on over the new epochs).

    The run dir is locked while training: a second process gets a :class:`DataError`.
    """
    out_dir = Path(out_dir)
    with lock_run_dir(out_dir):
        train, val = train_and_dev(splits, config.game.seed)
        config = resolve_predictor(config, train, val)  # "auto": decided here, recorded resolved
        if resume and run_dir.is_finished(out_dir, config):
            return out_dir
        ckpt = run_dir.check_run_dir(out_dir, resume, config)
        run_dir.start(out_dir)
        # a resumed run keeps the players it was started with (runs from before query attention had none)
        query_aware = is_query_aware(ckpt["players"]) if ckpt else config.players.query_attention and any(ex.query for ex in train)
        game = _set_up(train, val, config, out_dir, resumed=ckpt is not None, query_aware=query_aware)
        history = _History.resumed(out_dir, ckpt)
        for restart in range(history.start_restart, config.model_selection.restarts):
            _play_restart(game, restart, history, ckpt if ckpt is not None and ckpt["restart"] == restart else None)
        run_dir.finish(out_dir)
    return out_dir


@dataclass
class _Game:
    """What every restart of the game plays on."""

    config: InvRatConfig
    out_dir: Path
    device: str
    n_words: int
    n_labels: int
    init: torch.Tensor | ContextualWords | None
    train: Prepared
    dev: Prepared
    gold: list[list[int] | None] | None
    n_envs: int
    query_aware: bool

    @property
    def env_player(self) -> bool:
        """With one environment f_e sees a constant one-hot: L_i - L_e carries no signal, so f_e is not trained."""
        return self.config.game.use_env_player and self.n_envs > 1

    @property
    def schedule(self) -> list[str]:
        return self.config.game.active_schedule() if self.env_player else [p for p in self.config.game.schedule if p != "fe"]


def _set_up(
    train: list[Example], val: list[Example], config: InvRatConfig, out_dir: Path, *, resumed: bool, query_aware: bool
) -> _Game:
    """Vocabulary, word vectors, data and environments of the run; writes the run files."""
    if config.runtime.num_threads:
        torch.set_num_threads(config.runtime.num_threads)
    device = choose_device(config.runtime.device)
    labels = sorted({ex.label for ex in train})
    label_index = {lab: i for i, lab in enumerate(labels)}
    vocab = Vocab.build(train, lowercase=config.data.lowercase, min_count=config.data.min_count, max_vocab=config.data.max_vocab, max_len=config.data.max_len)
    cached = config.players.embedding == "minilm_cached"
    features = FrozenFeatures(vocab, config.runtime.cache_dir, device=device, progress=config.runtime.progress) if cached else None
    init, emb_info = initial_embeddings(config, vocab, features)
    longer = sum(len(ex.words) > config.data.max_len for ex in train)
    if longer:
        log.warning("invrat: warning: %d of %d training documents are longer than max_len = %d words: training reads "
                    "their first %d (rationalize reads every window of %d)", longer, len(train), config.data.max_len,
                    config.data.max_len, config.data.max_len)
    train_data = prepare(train, vocab, label_index, config, None)
    dev_data = prepare(val, vocab, label_index, config, None)
    if features is not None:  # the generator's input, fixed for the whole run: computed (or read) once
        train_data.features = features.sequences(train_data.encoded, "training sequences")
        dev_data.features = features.sequences(dev_data.encoded, "dev sequences")
    gold = [ex.rationale for ex in val] if any(ex.rationale is not None for ex in val) else None

    policy = resolve_policy(train, config)
    if config.experimental.select_by == "invariance" and not places_unseen_examples(config, policy):
        raise DataError(_NO_DEV_ENVS, field="select_by")
    if resumed:
        env_names = run_dir.read_env_names(out_dir)
    else:
        env_names = environments_for(train, config, policy)
        if env_names is None:
            env_names = fit_reference_envs(train_data, len(vocab), len(labels), config, device, init, query_aware)
    train_data.envs, env_order = index_environments(env_names)
    dev_data.envs = dev_environments(val, config, policy, env_order)
    if config.experimental.select_by == "invariance" and dev_data.envs is None:
        raise DataError(_NO_DEV_ENVS, field="select_by")
    game = _Game(config, out_dir, device, len(vocab), len(labels), init, train_data, dev_data, gold, len(env_order),
                 query_aware)
    envs = {"policy": policy, "names": env_order, "counts": {e: env_names.count(e) for e in env_order},
            "env_player": game.env_player, "per_example": env_names, "embedding": emb_info}
    run_dir.write_run_files(out_dir, config, fresh=not resumed, vocab=vocab, labels=labels, envs=envs)
    return game


@dataclass
class _History:
    """The epoch records so far and the kept epoch's record."""

    metrics: list[dict] = field(default_factory=list)
    best: dict | None = None
    start_restart: int = 0

    @classmethod
    def resumed(cls, out_dir: Path, ckpt: dict | None) -> _History:
        if not ckpt:
            return cls()
        metrics = run_dir.metrics_at_checkpoint(out_dir, ckpt)
        run_dir.write_metrics(out_dir, metrics)
        return cls(metrics, ckpt["best"], ckpt["restart"])


def _play_restart(game: _Game, restart: int, history: _History, ckpt: dict | None) -> None:
    """One restart's epochs (from the checkpoint's next epoch when resuming it), each judged and committed."""
    config, out_dir = game.config, game.out_dir
    seed_everything(config.game.seed + restart)
    players = build_players(config, game.n_words, game.n_labels, game.n_envs, game.init,
                            query_aware=game.query_aware).to(game.device)
    opts = optimizers(players, config)
    start_epoch, step = 0, 0
    if ckpt is not None:
        start_epoch, step = run_dir.restore_checkpoint(ckpt, players, opts)
        best = history.best
        if best is not None and (best["restart"], best["epoch"]) == (restart, ckpt["epoch"]):
            run_dir.publish_selected(out_dir, players, best)  # a kill may have come before it was published
    players.train()
    weight = gap_weight(config, game.env_player)
    for epoch in range(start_epoch, config.game.epochs):
        record, step = _play_epoch(game, players, opts, restart, epoch, step)
        kept = judge(record, history.best, config, weight, warmup=record["warmup"])
        history.best = kept or history.best
        record["selected_so_far"] = dict(history.best)
        history.metrics.append(record)
        run_dir.save_checkpoint(out_dir, restart=restart, epoch=epoch, step=step, players=players, opts=opts,
                                best=history.best, metrics=history.metrics)
        fault_point(f"invrat:epoch-saved:{restart}:{epoch}")
        if kept:
            run_dir.publish_selected(out_dir, players, kept)
        run_dir.write_metrics(out_dir, history.metrics)
        if config.runtime.progress:
            tqdm.write(_progress_line(record))


def _play_epoch(
    game: _Game, players: nn.ModuleDict, opts: dict[str, torch.optim.Optimizer], restart: int, epoch: int, step: int
) -> tuple[dict[str, Any], int]:
    """One epoch: warm-up (both predictors on whole documents) or the game's schedule, then dev metrics.
    Returns the epoch's record and the game step reached."""
    config, device, data = game.config, game.device, game.train
    t0 = time.perf_counter()
    temp = temperature(config, epoch)
    rng = random.Random((config.game.seed + restart) * 100003 + epoch)
    order = list(range(len(data.labels)))
    rng.shuffle(order)
    sums: dict[str, list[float]] = {}
    batches = range(math.ceil(len(data.labels) / config.game.batch_size))
    bar = tqdm(batches, desc=f"restart {restart + 1}/{config.model_selection.restarts} epoch {epoch + 1}/{config.game.epochs}",
               disable=not config.runtime.progress, leave=False)
    warmup = epoch < config.game.warmup_epochs
    lambda_diff = diff_weight(config.game.lambda_diff if game.env_player else 0.0, epoch - config.game.warmup_epochs,
                              config.experimental.diff_warmup_epochs)
    schedule = game.schedule
    for k in bar:
        idx = order[k * config.game.batch_size : (k + 1) * config.game.batch_size]
        if warmup:  # both predictors on every batch, on the whole document
            b = data.batch(idx).to(device)
            logs = player_step("fi", players, opts, b, config, device, temp, 0.0, warmup=True)
            if game.env_player:
                logs.update(player_step("fe", players, opts, b, config, device, temp, 0.0, warmup=True))
        else:
            player = schedule[step % len(schedule)]
            if player == "g" and config.experimental.generator_batch_size:  # the generator's own, larger batch
                idx = rng.sample(order, min(len(order), config.experimental.generator_batch_size))
            b = data.batch(idx).to(device)
            logs = player_step(player, players, opts, b, config, device, temp, lambda_diff)
            step += 1
        for key, v in logs.items():
            sums.setdefault(key, []).append(v)
    record = {
        "restart": restart, "epoch": epoch, "step": step, "temperature": temp, "warmup": warmup,
        "lambda_diff": lambda_diff,
        **{f"train_{k}": float(np.mean(v)) for k, v in sums.items()},
        **evaluate_players(players, game.dev, config, device, game.gold, env_player=game.env_player),
        "seconds": time.perf_counter() - t0,
    }
    return record, step


def _progress_line(record: dict[str, Any]) -> str:
    return (
        f"restart {record['restart']} epoch {record['epoch']}: dev_acc {record['dev_acc']:.3f} "
        f"selection {record['dev_selection_rate']:.3f}"
        + (f" token_f1 {record['dev_token_f1_truncated']:.3f}" if "dev_token_f1_truncated" in record else "")
        + f" ({record['seconds']:.0f}s)"
    )
