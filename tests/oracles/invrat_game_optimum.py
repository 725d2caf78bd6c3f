"""The exact optimum of InvRat's game on the `word-noise` synthetic task, for each lambda_diff.

The benchmark's documents hold two planted words, each of the label's class with probability
1 - q and of another class otherwise, and a spurious token whose rate depends on the label and the
environment. The generator sees the whole document, so it can choose per document: select both
planted words, or one planted word and the token. With Bayes-optimal predictors (f_i sees the
rationale, f_e the rationale and the environment) this script enumerates every such policy and
reports, for each lambda_diff, the one that minimises the generator's objective
``L_i + lambda_diff * max(0, L_i - L_e)`` (sparsity and continuity are equal under the fixed
budget of two words).

Why it matters: a generator that takes the token in every document holding it (instead of the
second planted word) loses on sentiment once lambda_diff exceeds 3.4. But where the two planted
words disagree they say nothing about the label, and there the token is worth six times its
penalty: the game's optimum keeps the token in those documents (37.5% of the documents holding it)
until lambda_diff reaches 5.94 (sentiment; 5.93 on topic).

``benchmarks/bench_invrat_game_optimum.py`` runs it for a range of lambda_diff and writes the
result; ``tests/invrat/test_game_optimum.py`` checks it by hand.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import NamedTuple


class Document(NamedTuple):
    """One kind of training document: its probability, label, environment, the classes of its two
    planted words and whether the spurious token is prepended."""

    prob: float
    label: int
    env: int
    word1: int
    word2: int
    token: bool


# what the rationale shows: ("words", class1, class2) or ("token", class of the kept planted word)
View = tuple
Policy = Callable[[int, int, bool], View]


def both_words(word1: int, word2: int, token: bool) -> View:
    """The invariant rationale: the two planted words, never the token."""
    return ("words", word1, word2)


def token_everywhere(word1: int, word2: int, token: bool) -> View:
    """The first planted word and the token in every document holding it."""
    return ("token", word1) if token else ("words", word1, word2)


def token_where_words_disagree(word1: int, word2: int, token: bool) -> View:
    """The first planted word and the token where the two planted words disagree."""
    return ("token", word1) if token and word1 != word2 else ("words", word1, word2)


def word_pairs(n_labels: int) -> list[tuple[int, int]]:
    """The classes of a document's two planted words, in the order a policy's choice tuple follows."""
    return list(itertools.product(range(n_labels), repeat=2))


def documents(n_labels: int, word_noise: float, train_rates: Sequence[float]) -> list[Document]:
    """Every kind of training document, the label uniform and the environments equally likely.

    The token is prepended with probability ``train_rates[env]`` for label 0 (the task's first
    label) and ``1 - train_rates[env]`` for the others, as in ``rationale_commons.synthetic``.
    """
    def word_prob(word: int, label: int) -> float:
        return 1 - word_noise if word == label else word_noise / (n_labels - 1)

    kinds = []
    for label, env, word1, word2, token in itertools.product(
        range(n_labels), range(len(train_rates)), range(n_labels), range(n_labels), (False, True)
    ):
        rate = train_rates[env] if label == 0 else 1 - train_rates[env]
        prob = word_prob(word1, label) * word_prob(word2, label) * (rate if token else 1 - rate)
        if prob > 0:  # a rate of 0 or 1 leaves some kinds impossible
            kinds.append(Document(prob / (n_labels * len(train_rates)), label, env, word1, word2, token))
    return kinds


def bayes_losses(docs: Sequence[Document], policy: Policy) -> tuple[float, float]:
    """Cross-entropies (nats) of the Bayes-optimal f_i and f_e on the rationales a policy selects."""
    views = [policy(d.word1, d.word2, d.token) for d in docs]
    joint_i: dict = defaultdict(float)
    joint_e: dict = defaultdict(float)
    for d, view in zip(docs, views, strict=True):
        joint_i[view, d.label] += d.prob
        joint_e[view, d.env, d.label] += d.prob
    marginal_i: dict = defaultdict(float)
    marginal_e: dict = defaultdict(float)
    for (view, _), p in joint_i.items():
        marginal_i[view] += p
    for (view, env, _), p in joint_e.items():
        marginal_e[view, env] += p
    loss_i = loss_e = 0.0
    for d, view in zip(docs, views, strict=True):
        loss_i -= d.prob * math.log(joint_i[view, d.label] / marginal_i[view])
        loss_e -= d.prob * math.log(joint_e[view, d.env, d.label] / marginal_e[view, d.env])
    return loss_i, loss_e


def all_policies(n_labels: int) -> dict[tuple[int, ...], Policy]:
    """Every per-document choice for documents with the token: both words (0), the first word and
    the token (1) or the second word and the token (2); documents without it keep both words."""
    kinds = word_pairs(n_labels)

    def policy_for(choice: tuple[int, ...]) -> Policy:
        table = dict(zip(kinds, choice, strict=True))

        def policy(word1: int, word2: int, token: bool) -> View:
            pick = table[word1, word2] if token else 0
            return ("words", word1, word2) if pick == 0 else ("token", word1 if pick == 1 else word2)

        return policy

    return {choice: policy_for(choice) for choice in itertools.product(range(3), repeat=len(kinds))}


def invariance_threshold(scored: dict[tuple[int, ...], tuple[float, float]]) -> float:
    """The smallest lambda_diff whose optimum is the invariant rationale (the token never taken):
    the largest ratio of a policy's gain in L_i over the invariant one to its penalty ``L_i - L_e``."""
    invariant_loss = scored[(0,) * len(next(iter(scored)))][0]
    return max((invariant_loss - li) / (li - le) for li, le in scored.values() if li - le > 1e-12)


def score_policies(docs: Sequence[Document], n_labels: int) -> dict[tuple[int, ...], tuple[float, float]]:
    """(L_i, L_e) of every policy of ``all_policies``."""
    return {choice: bayes_losses(docs, policy) for choice, policy in all_policies(n_labels).items()}


def optimum_by_lambda(
    docs: Sequence[Document], scored: dict[tuple[int, ...], tuple[float, float]], n_labels: int, lambdas: Sequence[float]
) -> list[dict]:
    """For each lambda_diff, the policy minimising ``L_i + lambda * max(0, L_i - L_e)``."""
    token_kinds = sum(d.prob for d in docs if d.token)
    kinds = word_pairs(n_labels)
    rows = []
    for lam in lambdas:
        choice, (loss_i, loss_e) = min(scored.items(), key=lambda kv: kv[1][0] + lam * max(0.0, kv[1][0] - kv[1][1]))
        taken = {kind for kind, pick in zip(kinds, choice, strict=True) if pick}
        share = sum(d.prob for d in docs if d.token and (d.word1, d.word2) in taken) / token_kinds
        rows.append({"lambda_diff": lam, "loss_i": round(loss_i, 4), "penalty": round(loss_i - loss_e, 4),
                     "token_taken_share": round(share, 4), "invariant": not taken})
    return rows


def break_even(docs: Sequence[Document], policy: Policy, reference: Policy) -> float:
    """The lambda_diff above which ``policy`` loses to ``reference`` (a policy without the token);
    0 when it never gains on it."""
    loss_i, loss_e = bayes_losses(docs, policy)
    ref_i, _ = bayes_losses(docs, reference)
    return max(0.0, (ref_i - loss_i) / (loss_i - loss_e))
