"""The invariance game's wiring: f_e reads the environment, and the generator's penalty is
``+lambda_diff * (L_i - L_e)`` with gradients through both losses (docs/algorithms.md §3).

The generator's gradient is linear in lambda_diff with the identity penalty:
``grad(L_i + lam (L_i - L_e)) = grad L_i + lam (grad L_i - grad L_e)`` (sparsity and continuity
terms cancel in the difference). Measuring the slope and comparing it with ``grad L_i - grad L_e``
computed independently catches a detached L_e (slope ``grad L_i``) and a flipped sign.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from invrat.config import InvRatConfig
from invrat.model import build_players, predictor_input_mask, select
from invrat.players import optimizers, player_step
from invrat.vocab import Encoded, collate

VOCAB, LABELS, ENVS = 30, 2, 2


def _config(**overrides) -> InvRatConfig:
    base = {"hidden_dim": 8, "embedding_dim": 8, "dropout": 0.0, "grad_clip": 1e9, "penalty": "identity",
            "lambda_continuity": 0.5, "alpha": 0.3, "device": "cpu", "precision": "fp32"}
    return InvRatConfig.model_validate({**base, **overrides})


def _batch():
    gen = torch.Generator().manual_seed(0)
    items = [Encoded(ids=torch.randint(3, VOCAB, (n,), generator=gen).tolist(), n_doc=n) for n in (7, 9, 5, 8)]
    return collate(items, labels=[0, 1, 1, 0], envs=[0, 0, 1, 1])


def _generator_grad(players, config, batch, lambda_diff: float) -> torch.Tensor:
    players = copy.deepcopy(players)
    torch.manual_seed(1)  # the same Gumbel draw for every lambda
    player_step("g", players, optimizers(players, config), batch, config, "cpu", 1.0, lambda_diff)
    return torch.cat([p.grad.flatten() for p in players["g"].parameters() if p.grad is not None])


def _grad_of_difference(players, config, batch) -> torch.Tensor:
    """grad_g (L_i - L_e), computed here from the players, independent of the game code."""
    players = copy.deepcopy(players)
    torch.manual_seed(1)
    budget = config.game.alpha if config.experimental.train_selection == "top_alpha" else None
    logits = players["g"](batch.ids, batch.lengths).float()
    z, _ = select(logits, batch.doc_mask, train=True, gumbel=config.game.gumbel, temperature=1.0, top_alpha=budget)
    zin = predictor_input_mask(z, batch.doc_mask, batch.real_mask)
    logits_i = players["fi"](batch.ids, batch.lengths, zin, batch.real_mask).float()
    logits_e = players["fe"](batch.ids, batch.lengths, zin, batch.real_mask, batch.envs).float()
    if config.experimental.env_residual:
        logits_e = logits_e + logits_i
    diff = F.cross_entropy(logits_i, batch.labels) - F.cross_entropy(logits_e, batch.labels)
    params = [p for p in players["g"].parameters() if p.requires_grad]
    return torch.cat([g.flatten() for g in torch.autograd.grad(diff, params)])


@pytest.mark.parametrize(("env_residual", "predictor"), [(False, "bigru"), (True, "bigru"), (False, "bag_of_words")])
def test_generator_penalty_is_plus_li_minus_le_through_both(env_residual, predictor):
    config = _config(env_residual=env_residual, predictor=predictor)
    torch.manual_seed(0)
    players = build_players(config, VOCAB, LABELS, ENVS, None)
    if env_residual:  # f_e's correction starts at zero; give it weights so L_e differs from L_i
        torch.nn.init.normal_(players["fe"].head.weight)
    if predictor == "bag_of_words":  # zero-initialised tables: give them weights so both losses move with z
        for name in ("fi", "fe"):
            for param in players[name].parameters():
                torch.nn.init.normal_(param)
    batch = _batch()
    g0, g1, g2 = (_generator_grad(players, config, batch, lam) for lam in (0.0, 1.0, 2.0))
    slope = g2 - g1
    assert torch.allclose(slope, g1 - g0, atol=1e-6)  # linear in lambda: the identity penalty
    expected = _grad_of_difference(players, config, batch)
    assert expected.abs().max() > 1e-4  # L_e really moves the generator
    assert torch.allclose(slope, expected, atol=1e-5)


@pytest.mark.parametrize("predictor", ["bigru", "bag_of_words"])
def test_environment_aware_predictor_reads_the_environment(predictor):
    """Same tokens, label = environment: only a predictor that sees the environment can fit it."""
    config = _config(predictor=predictor)
    torch.manual_seed(0)
    players = build_players(config, VOCAB, LABELS, ENVS, None)
    items = [Encoded(ids=[5, 6, 7, 8], n_doc=4)] * 8
    envs = [0, 1] * 4
    batch = collate(items, labels=envs, envs=envs)
    full = batch.doc_mask
    zin = predictor_input_mask(full, batch.doc_mask, batch.real_mask)
    for name in ("fi", "fe"):
        opt = torch.optim.Adam(players[name].parameters(), lr=0.05)
        for _ in range(60):
            args = (batch.envs,) if name == "fe" else ()
            loss = F.cross_entropy(players[name](batch.ids, batch.lengths, zin, batch.real_mask, *args), batch.labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if name == "fi":
            assert loss.item() > 0.6  # ln 2: f_i cannot tell the examples apart
        else:
            assert loss.item() < 0.05
    swapped = players["fe"](batch.ids, batch.lengths, zin, batch.real_mask, 1 - batch.envs)
    assert (swapped.argmax(-1) != batch.labels).all()
