"""How a player learns (docs/algorithms.md §3): its own parameters, its optimizer, and one
coordinate-descent step of the game on a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from invrat.config import PLAYERS, InvRatConfig
from invrat.losses import generator_objective
from invrat.model import predictor_input_mask, select
from invrat.vocab import Batch
from rationale_commons.runtime import autocast


def own_parameters(players: nn.ModuleDict, name: str) -> list[nn.Parameter]:
    """The trainable parameters a player updates (a shared embedding belongs to f_i, not to g)."""
    params = [p for p in players[name].parameters() if p.requires_grad]
    if name == "g":
        borrowed = {id(p) for p in players["fi"].parameters()}
        params = [p for p in params if id(p) not in borrowed]
    return params


def learning_rate(player: str, config: InvRatConfig) -> float:
    """``game.lr``, except for bag-of-words predictors (``players.bag_of_words_lr``)."""
    if player != "g" and config.players.predictor == "bag_of_words":
        return config.players.bag_of_words_lr
    return config.game.lr


def optimizers(players: nn.ModuleDict, config: InvRatConfig) -> dict[str, torch.optim.Optimizer]:
    """One Adam per player, over that player's own parameters."""
    return {
        name: torch.optim.Adam(own_parameters(players, name), lr=learning_rate(name, config), weight_decay=config.game.weight_decay)
        for name in PLAYERS
    }


def player_step(
    player: str,
    players: nn.ModuleDict,
    opts: dict[str, torch.optim.Optimizer],
    b: Batch,
    config: InvRatConfig,
    device: str,
    temperature: float,
    lambda_diff: float,
    warmup: bool = False,
) -> dict[str, float]:
    """One coordinate-descent update of ``player`` on batch ``b``; returns the logged losses.

    ``warmup``: the predictors see the whole document (z = 1) and ``player`` must not be the generator.
    """
    budget = config.game.alpha if config.experimental.train_selection == "top_alpha" else None

    def draw_mask() -> tuple[torch.Tensor, torch.Tensor]:
        logits = players["g"](b.ids, b.lengths, b.query_mask, b.features).float()
        return select(logits, b.doc_mask, train=True, gumbel=config.game.gumbel, temperature=temperature, top_alpha=budget)

    with autocast(device, config.runtime.precision):
        if warmup:
            z = b.doc_mask
        elif player == "g":
            z, probs = draw_mask()
        else:
            with torch.no_grad():
                z, _ = draw_mask()
        zin = predictor_input_mask(z, b.doc_mask, b.real_mask)
        logs: dict[str, float] = {}
        logits_i = None
        if player in ("g", "fi"):
            logits_i = players["fi"](b.ids, b.lengths, zin, b.real_mask, query_mask=b.query_mask).float()
            loss_i = F.cross_entropy(logits_i, b.labels)
            logs["loss_i"] = float(loss_i.detach())
        if player == "fe" or (player == "g" and lambda_diff > 0):
            logits_e = players["fe"](b.ids, b.lengths, zin, b.real_mask, b.envs, query_mask=b.query_mask).float()
            if config.experimental.env_residual:
                if logits_i is None:  # f_e's own step trains the correction only (after f_e: dropout draws stay in order)
                    with torch.no_grad():
                        logits_i = players["fi"](b.ids, b.lengths, zin, b.real_mask, query_mask=b.query_mask).float()
                logits_e = logits_e + logits_i
            loss_e = F.cross_entropy(logits_e, b.labels)
            logs["loss_e"] = float(loss_e.detach())
        if player == "g":
            terms = generator_objective(
                loss_agnostic=loss_i,
                loss_aware=loss_e if lambda_diff > 0 else loss_i.detach(),
                z=z,
                mask=b.doc_mask,
                alpha=config.game.alpha,
                lambda_diff=lambda_diff,
                lambda_sparsity=config.game.lambda_sparsity,
                lambda_continuity=config.game.lambda_continuity,
                penalty=config.game.penalty,
                rate_of=None if budget is None else probs,
            )
            loss = terms["total"]
            logs.update({f"gen_{k}": float(v.detach()) for k, v in terms.items()})
        else:
            loss = loss_i if player == "fi" else loss_e
    for opt in opts.values():
        opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(own_parameters(players, player), config.game.grad_clip)
    opts[player].step()
    return logs
