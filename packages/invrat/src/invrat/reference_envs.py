"""The ``infer`` environment policy (environments.py): a plain rationalizer (one environment,
no invariance penalty) trained briefly; the training examples its f_i gets right form one
environment, the others the second."""

from __future__ import annotations

import random
from dataclasses import replace

import torch

from invrat.config import InvRatConfig
from invrat.data import Prepared, length_sorted_batches
from invrat.encoder import ContextualWords
from invrat.environments import split_by_correctness
from invrat.model import build_players, inference_rationale, predictor_input_mask
from invrat.players import optimizers, player_step
from invrat.schedules import temperature
from rationale_commons.runtime import seed_everything


def fit_reference_envs(
    data: Prepared, vocab_size: int, n_labels: int, config: InvRatConfig, device: str,
    init: torch.Tensor | ContextualWords | None, query_aware: bool = False,
) -> list[str]:
    """An environment name per training example, from a reference model's correctness."""
    ref_cfg = config.model_copy(update={"use_env_player": False, "lambda_diff": 0.0})
    seed_everything(config.game.seed + 7919)
    players = build_players(ref_cfg, vocab_size, n_labels, 1, init, query_aware=query_aware).to(device)
    opts = optimizers(players, ref_cfg)
    sched = ref_cfg.game.active_schedule()
    single = replace(data, envs=[0] * len(data.labels))
    step = 0
    for epoch in range(config.game.warmup_epochs + config.environments.infer_epochs):
        rng = random.Random(config.game.seed * 7919 + epoch)
        order = list(range(len(single.labels)))
        rng.shuffle(order)
        for start in range(0, len(order), config.game.batch_size):
            b = single.batch(order[start : start + config.game.batch_size]).to(device)
            if epoch < config.game.warmup_epochs:
                player_step("fi", players, opts, b, ref_cfg, device, 1.0, 0.0, warmup=True)
                continue
            player_step(sched[step % len(sched)], players, opts, b, ref_cfg, device, temperature(config, epoch), 0.0)
            step += 1
    players.eval()
    correct = [False] * len(single.labels)
    with torch.no_grad():
        for idx in length_sorted_batches(single.encoded, config.runtime.eval_batch_size):
            b = single.batch(idx).to(device)
            logits = players["g"](b.ids, b.lengths, b.query_mask, b.features).float()
            z, _ = inference_rationale(logits, b.doc_mask, selection=config.game.selection, alpha=config.game.alpha)
            pred = players["fi"](b.ids, b.lengths, predictor_input_mask(z, b.doc_mask, b.real_mask), b.real_mask,
                                  query_mask=b.query_mask).argmax(-1)
            for row, i in enumerate(idx):
                correct[i] = bool(pred[row] == b.labels[row])
    return split_by_correctness(correct)
