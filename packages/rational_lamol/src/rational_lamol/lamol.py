"""LAMOL's loss (Sun et al., ICLR 2020; docs/algorithms.md §1), as pure tensor functions.

- QA sequence ``c q __ans__ a EOS``: loss only on ``a EOS`` (the tokens after ``__ans__``).
- LM sequence ``GEN c q __ans__ a EOS``: loss on every token after GEN.
- ``L = L_QA + lm_lambda * L_LM``.

Shapes: B batch, T time, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rational_lamol.tasks import TrainSequence

IGNORE = -100


@dataclass
class LamolBatch:
    qa_ids: torch.Tensor  # (B, T) right-padded (T = longest LM row)
    qa_mask: torch.Tensor  # (B, T) 1 on real tokens
    qa_labels: torch.Tensor  # (B, T) next-token targets, IGNORE outside `a EOS`
    qa_weights: torch.Tensor  # (B, T) per-target weights (ans_weight on the first answer token)
    lm_ids: torch.Tensor  # (B, T)
    lm_mask: torch.Tensor
    lm_labels: torch.Tensor  # IGNORE on padding (GEN itself is never a target)

    def to(self, device) -> LamolBatch:
        return LamolBatch(**{k: v.to(device) for k, v in self.__dict__.items()})


def qa_targets(ids: Sequence[int], answer_start: int) -> list[int]:
    """Labels aligned with ``ids`` (HF convention, shifted inside the loss): only ``a EOS``."""
    return [IGNORE] * answer_start + list(ids[answer_start:])


def lm_targets(ids: Sequence[int]) -> list[int]:
    """Every token after GEN (position 0 is GEN: never predicted)."""
    return [IGNORE, *ids[1:]]


def collate(seqs: Sequence[TrainSequence], pad_id: int, *, ans_weight: float = 1.0) -> LamolBatch:
    """Right-pad QA and LM sequences of a batch into tensors."""

    # QA and LM rows share one width so a batch runs as a single forward of 2B rows
    width = max(len(s.qa_ids) for s in seqs) + 1

    def pad(rows: list[list[int]], value: int) -> torch.Tensor:
        return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)

    qa = [s.qa_ids for s in seqs]
    lm = [s.lm_ids for s in seqs]
    qa_lab = [qa_targets(s.qa_ids, s.answer_start) for s in seqs]
    weights = []
    for s in seqs:
        w = [1.0] * len(s.qa_ids)
        w[s.answer_start] = ans_weight
        weights.append(w)
    return LamolBatch(
        qa_ids=pad(qa, pad_id),
        qa_mask=pad([[1] * len(r) for r in qa], 0),
        qa_labels=pad(qa_lab, IGNORE),
        qa_weights=torch.tensor([w + [0.0] * (width - len(w)) for w in weights]),
        lm_ids=pad(lm, pad_id),
        lm_mask=pad([[1] * len(r) for r in lm], 0),
        lm_labels=pad([lm_targets(r) for r in lm], IGNORE),
    )


def position_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy at every position, ``(B, T)``: logits (B, T, V) at position t against
    ``labels[:, t + 1]`` (0 at the last position and at IGNORE targets).

    The labels are shifted, not the logits: slicing ``logits[:, :-1]`` copies (B, T-1, V) and its
    backward fills another (B, T, V) of zeros (about a tenth of a training step at GPT-2's
    vocabulary). Each position's loss is computed on its own row, so the values are those of the
    sliced form bit for bit.
    """
    B, T, V = logits.shape
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE)  # (B, T)
    ce = F.cross_entropy(logits.float().reshape(B * T, V), shifted.reshape(-1), ignore_index=IGNORE, reduction="none")
    return ce.view(B, T)


def weighted_mean(losses: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean of :func:`position_losses` over the targets that are not IGNORE.

    labels (B, T) are aligned with the inputs, weights (B, T) with the labels.
    """
    ce = losses[:, :-1].reshape(-1)  # (B * (T-1),) the positions that have a next token
    valid = (labels[:, 1:].reshape(-1) != IGNORE).float()
    w = valid if weights is None else valid * weights[:, 1:].reshape(-1)
    return (ce * w).sum() / w.sum().clamp_min(1e-8)


def token_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean next-token cross-entropy over the targets that are not IGNORE.

    logits (B, T, V) predict position t+1 from position t; labels (B, T) are aligned with the
    inputs (the shift happens here), weights (B, T) aligned with labels.
    """
    return weighted_mean(position_losses(logits, labels), labels, weights)


def lamol_loss(model, batch: LamolBatch, lm_lambda: float) -> tuple[torch.Tensor, dict[str, float]]:
    """``L = L_QA + lm_lambda * L_LM`` on one batch.

    QA and LM rows go through the model as one forward of 2B rows (one graph: simple under
    DistributedDataParallel) and one cross-entropy; the LM rows are skipped when ``lm_lambda`` is 0.
    """
    if lm_lambda == 0:
        qa_logits = model(input_ids=batch.qa_ids, attention_mask=batch.qa_mask).logits
        loss_qa = token_loss(qa_logits, batch.qa_labels, batch.qa_weights)
        return loss_qa, {"qa": float(loss_qa.detach()), "lm": 0.0}
    b = batch.qa_ids.shape[0]
    logits = model(
        input_ids=torch.cat([batch.qa_ids, batch.lm_ids]), attention_mask=torch.cat([batch.qa_mask, batch.lm_mask])
    ).logits  # (2B, T, V)
    losses = position_losses(logits, torch.cat([batch.qa_labels, batch.lm_labels]))  # (2B, T)
    loss_qa = weighted_mean(losses[:b], batch.qa_labels, batch.qa_weights)
    loss_lm = weighted_mean(losses[b:], batch.lm_labels)
    loss = loss_qa + lm_lambda * loss_lm
    return loss, {"qa": float(loss_qa.detach()), "lm": float(loss_lm.detach())}
