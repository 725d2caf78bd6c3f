"""The exact game optimum on the word-noise task (tests/oracles/invrat_game_optimum.py), checked by hand."""

from __future__ import annotations

import math

import pytest

from oracles import invrat_game_optimum as optimum


def cross_entropy(p: float, q: float) -> float:
    return -(p * math.log(q) + (1 - p) * math.log(1 - q))


def test_documents_are_a_distribution() -> None:
    docs = optimum.documents(3, 0.25, (0.9, 0.7))
    assert sum(d.prob for d in docs) == pytest.approx(1.0)


def test_token_where_the_words_disagree_is_worth_six_times_its_penalty() -> None:
    # Two disagreeing planted words say nothing (posterior 1/2). With the token, f_i predicts the
    # pooled P(positive | token) = 0.8, f_e the per-environment 0.9 / 0.7: gain ln 2 - L_i, penalty L_i - L_e.
    loss_i = (cross_entropy(0.9, 0.8) + cross_entropy(0.7, 0.8)) / 2
    loss_e = (cross_entropy(0.9, 0.9) + cross_entropy(0.7, 0.7)) / 2
    by_hand = (math.log(2) - loss_i) / (loss_i - loss_e)
    docs = optimum.documents(2, 0.25, (0.9, 0.7))
    assert optimum.break_even(docs, optimum.token_where_words_disagree, optimum.both_words) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(5.944, abs=1e-3)


def test_optimum_is_invariant_only_above_the_threshold() -> None:
    docs = optimum.documents(2, 0.25, (0.9, 0.7))
    scored = optimum.score_policies(docs, 2)
    threshold = optimum.invariance_threshold(scored)
    below, above = optimum.optimum_by_lambda(docs, scored, 2, [threshold - 0.1, threshold + 0.1])
    assert not below["invariant"] and below["token_taken_share"] > 0
    assert above["invariant"] and above["token_taken_share"] == 0 and above["penalty"] == 0


def test_without_environment_dependence_the_token_is_never_penalised() -> None:
    docs = optimum.documents(2, 0.25, (0.8, 0.8))
    loss_i, loss_e = optimum.bayes_losses(docs, optimum.token_where_words_disagree)
    assert loss_i == pytest.approx(loss_e)
