"""Hand-computed InvRat loss terms (docs/algorithms.md §3) and the straight-through estimator."""

from __future__ import annotations

import pytest
import torch

from invrat.losses import (
    continuity_loss,
    generator_objective,
    invariance_penalty,
    sparsity_loss,
    straight_through,
)
from invrat.model import predictor_input_mask, select, top_fraction


def test_sparsity_over_real_tokens_only() -> None:
    z = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    # row 0: 2 of 3 real tokens selected (the padded 1 is ignored) → |2/3 - 0.5| = 1/6
    # row 1: 0 of 2 → |0 - 0.5| = 0.5 ; mean = (1/6 + 1/2) / 2 = 1/3
    assert sparsity_loss(z, mask, alpha=0.5).item() == pytest.approx(1 / 3)


def test_continuity_ignores_padding() -> None:
    z = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    # real pairs: (0,1) jump 1, (1,2) jump 0 → 1/2; the jump into padding (2,3) is not counted
    assert continuity_loss(z, mask).item() == pytest.approx(0.5)
    # an example with one real token has no pair: contributes 0
    assert continuity_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])).item() == 0.0


def test_invariance_penalty_relu_and_identity() -> None:
    li, le = torch.tensor(0.7), torch.tensor(0.9)
    assert invariance_penalty(li, le, "relu").item() == 0.0
    assert invariance_penalty(li, le, "identity").item() == pytest.approx(-0.2)
    assert invariance_penalty(le, li, "relu").item() == pytest.approx(0.2)


def test_generator_objective_sums_weighted_terms() -> None:
    z = torch.tensor([[1.0, 0.0, 1.0]])
    mask = torch.ones(1, 3)
    terms = generator_objective(
        loss_agnostic=torch.tensor(1.0), loss_aware=torch.tensor(0.5), z=z, mask=mask, alpha=0.2,
        lambda_diff=10.0, lambda_sparsity=1.0, lambda_continuity=5.0,
    )
    # 1 + 10 * 0.5 + 1 * |2/3 - 0.2| + 5 * (2/2)
    assert terms["total"].item() == pytest.approx(1 + 5 + (2 / 3 - 0.2) + 5)


def test_straight_through_forward_hard_backward_soft() -> None:
    soft = torch.tensor([0.3, 0.8], requires_grad=True)
    hard = (soft > 0.5).float()
    z = straight_through(hard, soft)
    assert z.tolist() == [0.0, 1.0]
    (z * torch.tensor([2.0, 3.0])).sum().backward()
    assert soft.grad.tolist() == [2.0, 3.0]


def test_select_never_picks_padding_or_query_and_passes_gradient() -> None:
    logits = torch.tensor([[3.0, -3.0, 3.0, 3.0, 3.0]], requires_grad=True)
    doc = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]])  # positions 3, 4: separator/query or padding
    real = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    z, probs = select(logits, doc, train=False, gumbel=False, temperature=1.0)
    assert z.tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0]]
    assert probs[0, 3:].tolist() == [0.0, 0.0]
    # predictors always see the separator/query position (3), never padding (4)
    assert predictor_input_mask(z, doc, real).tolist() == [[1.0, 0.0, 1.0, 1.0, 0.0]]
    z.sum().backward()
    s = torch.sigmoid(torch.tensor(3.0)).item()
    assert logits.grad[0, 0].item() == pytest.approx(s * (1 - s))
    assert logits.grad[0, 3].item() == 0.0


def test_top_fraction_picks_the_highest_document_logits() -> None:
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0, 9.0], [-5.0, -4.0, -3.0, -2.0, -1.0]])
    doc = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])  # position 4 of row 0 is not document
    z = top_fraction(logits, doc, 0.5)  # ceil(0.5 * 4) = 2 and ceil(0.5 * 3) = 2 words
    assert z.tolist() == [[0, 1, 0, 1, 0], [0, 1, 1, 0, 0]]
    assert top_fraction(logits, doc, 0.01).sum(dim=1).tolist() == [1, 1]  # never empty
    assert top_fraction(logits, torch.zeros_like(doc), 0.5).sum() == 0  # no document: nothing


def test_select_with_a_budget_takes_exactly_k_noisy_top_words_and_passes_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 8, requires_grad=True)
    doc = torch.tensor([[1] * 8, [1] * 5 + [0] * 3, [1] * 2 + [0] * 6], dtype=torch.float)
    z, _ = select(logits, doc, train=True, gumbel=True, temperature=0.5, top_alpha=0.3)
    assert z.sum(dim=1).tolist() == [3.0, 2.0, 1.0]  # ceil(0.3 * n) for n = 8, 5, 2
    assert (z * (1 - doc)).abs().sum() == 0
    z.sum().backward()  # straight-through: every document position gets the soft gradient, no other does
    assert (logits.grad[doc > 0] > 0).all() and (logits.grad[doc == 0] == 0).all()
    # without noise the budget is the inference top-alpha rationale
    z_clean, _ = select(logits.detach(), doc, train=True, gumbel=False, temperature=1.0, top_alpha=0.3)
    assert z_clean.tolist() == top_fraction(logits.detach(), doc, 0.3).tolist()


def test_sparsity_can_measure_the_probabilities_instead_of_the_mask() -> None:
    """Under a fixed budget the hard rate is constant; ``rate_of`` makes the term act on the probabilities."""
    z = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    probs = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    common = dict(loss_agnostic=torch.tensor(0.0), loss_aware=torch.tensor(0.0), z=z, mask=torch.ones(1, 4), alpha=0.25,
                  lambda_diff=0.0, lambda_sparsity=1.0, lambda_continuity=0.0)
    assert generator_objective(**common)["sparsity"].item() == pytest.approx(0.0)
    assert generator_objective(**common, rate_of=probs)["sparsity"].item() == pytest.approx(0.25)
