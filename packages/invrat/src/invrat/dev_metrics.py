"""What an epoch is judged by: the players' dev metrics (accuracy and loss of f_i on the generator's
hard rationale, selection rate, per-environment losses, token F1 against gold rationales)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from invrat.config import InvRatConfig
from invrat.data import Prepared, length_sorted_batches
from invrat.model import inference_rationale, predictor_input_mask
from rationale_commons.metrics.eraser import mask_token_f1
from rationale_commons.runtime import autocast


@torch.no_grad()
def evaluate_players(
    players: nn.ModuleDict, data: Prepared, config: InvRatConfig, device: str, gold: Sequence[list[int] | None] | None = None,
    *, env_player: bool = True,
) -> dict[str, float]:
    """Dev accuracy and loss of f_i on the generator's hard rationale, selection rate, and token F1 when gold
    is known; with the dev environments (``data.envs``) also f_i's loss per environment and (when the env
    player is on) f_e's loss."""
    players.eval()
    correct, loss_sum, loss_e_sum, selected, doc_tokens = 0, 0.0, 0.0, 0.0, 0.0
    aware = env_player and data.envs is not None and players["fe"].n_envs > 1
    env_loss = torch.zeros(max(1, players["fe"].n_envs), dtype=torch.float64)
    env_loss_sq, env_count = torch.zeros_like(env_loss), torch.zeros_like(env_loss)
    f1s: list[float] = []
    for idx in length_sorted_batches(data.encoded, config.runtime.eval_batch_size):
        b = data.batch(idx).to(device)
        with autocast(device, config.runtime.precision):
            logits = players["g"](b.ids, b.lengths, b.query_mask, b.features)
            z, _ = inference_rationale(logits.float(), b.doc_mask, selection=config.game.selection, alpha=config.game.alpha)
            zin = predictor_input_mask(z, b.doc_mask, b.real_mask)
            out = players["fi"](b.ids, b.lengths, zin, b.real_mask, query_mask=b.query_mask)
            if aware:
                out_e = players["fe"](b.ids, b.lengths, zin, b.real_mask, b.envs, query_mask=b.query_mask).float()
                if config.experimental.env_residual:
                    out_e = out_e + out.float()
                loss_e_sum += float(F.cross_entropy(out_e, b.labels, reduction="sum"))
        correct += int((out.argmax(-1) == b.labels).sum())
        losses = F.cross_entropy(out.float(), b.labels, reduction="none")
        loss_sum += float(losses.sum())
        if data.envs is not None:
            envs, per_example = b.envs.cpu(), losses.cpu().double()
            env_loss.index_add_(0, envs, per_example)
            env_loss_sq.index_add_(0, envs, per_example**2)
            env_count.index_add_(0, envs, torch.ones_like(per_example))
        selected += float(z.sum())
        doc_tokens += float(b.doc_mask.sum())
        if gold is not None:
            chosen = (z.cpu() > 0.5).tolist()
            for row, i in enumerate(idx):
                if gold[i] is not None:
                    n = data.encoded[i].n_doc
                    f1s.append(mask_token_f1(gold[i][:n], chosen[row][:n]))
    players.train()
    n = max(1, len(data.labels))
    result = {"dev_acc": correct / n, "dev_loss": loss_sum / n, "dev_selection_rate": selected / max(1.0, doc_tokens)}
    if aware:
        result["dev_loss_e"] = loss_e_sum / n
    if data.envs is not None:
        count = env_count.clamp(min=1)
        mean = env_loss / count
        result["dev_loss_by_env"] = mean.tolist()
        # standard error of each environment's mean loss: how far the gap between two can move by chance
        variance = (env_loss_sq / count - mean**2).clamp(min=0) * count / (count - 1).clamp(min=1)
        result["dev_loss_se_by_env"] = (variance / count).sqrt().tolist()
    if f1s:
        result["dev_token_f1_truncated"] = float(np.mean(f1s))
    return result
