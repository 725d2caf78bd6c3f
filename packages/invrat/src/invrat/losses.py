"""The InvRat objective as pure tensor functions (Chang et al., ICML 2020, §3; docs/algorithms.md §3).

Shapes: B = batch, T = sequence length. ``mask`` is 1 on the positions a term is
taken over (real document tokens) and 0 elsewhere (padding, the separator, the
appended query), so padding never counts in the sparsity or continuity terms
(the reference code counted padding in the continuity term).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Forward value ``hard``, gradient of ``soft`` (straight-through estimator)."""
    return hard + (soft - soft.detach())  # exactly `hard` forward (0 is added)


def invariance_penalty(
    loss_agnostic: torch.Tensor, loss_aware: torch.Tensor, kind: Literal["relu", "identity"] = "relu"
) -> torch.Tensor:
    """``h(L_i - L_e)``: how much the environment helps the prediction from the rationale.

    ``h = ReLU`` (the paper's choice) or the identity.
    """
    diff = loss_agnostic - loss_aware
    return F.relu(diff) if kind == "relu" else diff


def sparsity_loss(z: torch.Tensor, mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """``|mean(z) - alpha|`` per example over real tokens only, averaged over the batch.

    z, mask: (B, T). An example with no real token contributes 0.
    """
    mask = mask.to(z.dtype)
    count = mask.sum(dim=1)  # (B,)
    selected = (z * mask).sum(dim=1) / count.clamp(min=1.0)  # (B,)
    per_example = (selected - alpha).abs() * (count > 0).to(z.dtype)
    return per_example.mean()


def continuity_loss(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mean |z_t - z_{t-1}|`` per example over pairs of adjacent real tokens, averaged over the batch.

    A pair counts only when both positions are real, so the jump into padding (or
    into the separator before an appended query) is never penalised.
    """
    mask = mask.to(z.dtype)
    pair_mask = mask[:, 1:] * mask[:, :-1]  # (B, T-1)
    jumps = (z[:, 1:] - z[:, :-1]).abs() * pair_mask
    count = pair_mask.sum(dim=1)
    per_example = jumps.sum(dim=1) / count.clamp(min=1.0)
    return per_example.mean()


def generator_objective(
    *,
    loss_agnostic: torch.Tensor,
    loss_aware: torch.Tensor,
    z: torch.Tensor,
    mask: torch.Tensor,
    alpha: float,
    lambda_diff: float,
    lambda_sparsity: float,
    lambda_continuity: float,
    penalty: Literal["relu", "identity"] = "relu",
    rate_of: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``L_i + lambda_diff h(L_i - L_e) + lambda_sparsity |mean z - alpha| + lambda_continuity mean|dz|``.

    Returns every term (``total`` is the one to minimise) so they can be logged.
    With ``lambda_diff = 0`` this is the plain generator-predictor rationalizer (RNP, Lei et al. 2016).
    ``rate_of``: what the sparsity term measures instead of ``z`` (the selection probabilities
    under a fixed top-k budget, where the hard rate is a constant: on ``z`` the term would push every
    logit down at once until sigmoid' vanishes; on the probabilities it keeps them calibrated to alpha).
    """
    inv = invariance_penalty(loss_agnostic, loss_aware, penalty)
    sp = sparsity_loss(z if rate_of is None else rate_of, mask, alpha)
    co = continuity_loss(z, mask)
    total = loss_agnostic + lambda_diff * inv + lambda_sparsity * sp + lambda_continuity * co
    return {"total": total, "invariance": inv, "sparsity": sp, "continuity": co}
