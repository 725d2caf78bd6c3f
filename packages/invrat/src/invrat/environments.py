"""Where environments come from (docs/algorithms.md §3, "Environments").

InvRat needs an environment per training example. Most NLP datasets (all of
ERASER) have none, so the policy is explicit and recorded in the run dir:

- ``column``: the data's ``env`` field (``--env-column``), optionally renamed or
  merged through ``env_map``. Every training example must have one.
- ``single``: one environment. The invariance penalty is then h(L_i - L_e) with
  f_e seeing the same constant one-hot as a bias: InvRat degenerates to a plain
  generator-predictor rationalizer (Lei et al. 2016 style).
- ``rule``: ``hash`` puts an example in bucket crc32(id) mod env_count (stable
  across runs and machines); ``length`` bins documents into env_count
  length quantiles (a proxy for a real shift, e.g. short vs long reviews).
- ``infer``: EIIL-style (Creager et al. 2021, "Environment Inference for
  Invariant Learning"). A reference plain rationalizer (single environment) is
  trained for ``infer_epochs``; training examples its f_i gets right go to
  "ref_correct", the others to "ref_wrong". This is the hard-assignment
  solution of EIIL's inner problem for a reference model that is confident
  where it is right: it puts the examples where the shortcut works apart from
  those where it fails, which maximises the gap the invariance penalty sees.
- ``auto``: ``column`` when every training example has an env, else ``single``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from invrat.config import InvRatConfig
from rationale_commons.errors import DataError
from rationale_commons.records import Example


def resolve_policy(examples: Sequence[Example], config: InvRatConfig) -> str:
    """The concrete policy for ``auto``; the configured one otherwise."""
    if config.environments.policy != "auto":
        return config.environments.policy
    return "column" if examples and all(ex.env is not None for ex in examples) else "single"


def column_environments(examples: Sequence[Example], env_map: dict[str, str] | None = None) -> list[str]:
    missing = [ex.id for ex in examples if ex.env is None]
    if missing:
        raise DataError(
            f"environments='column' but {len(missing)} training example(s) have no env (first: {missing[0]!r}); "
            "pass --env-column or choose environments='single'|'rule'|'infer'",
            field="env",
        )
    envs = [str(ex.env) for ex in examples]
    if env_map is None:
        return envs
    unmapped = sorted(set(envs) - set(env_map))
    if unmapped:
        raise DataError(f"env_map has no entry for env value(s) {unmapped[:5]}", field="env_map")
    return [env_map[e] for e in envs]


def rule_environments(examples: Sequence[Example], rule: str, count: int) -> list[str]:
    if rule == "hash":
        return [f"hash{zlib.crc32(ex.id.encode('utf-8')) % count}" for ex in examples]
    lengths = np.array([len(ex.words) for ex in examples], dtype=float)
    edges = np.quantile(lengths, np.linspace(0, 1, count + 1)[1:-1]) if count > 1 else np.array([])
    return [f"len{int(np.searchsorted(edges, n, side='right'))}" for n in lengths]


def split_by_correctness(correct: Sequence[bool]) -> list[str]:
    """The ``infer`` assignment given a reference model's per-example correctness."""
    return ["ref_correct" if c else "ref_wrong" for c in correct]


def environments_for(examples: Sequence[Example], config: InvRatConfig, policy: str) -> list[str] | None:
    """Env name per training example for every policy except ``infer`` (which needs a trained reference; None)."""
    if policy == "column":
        return column_environments(examples, config.environments.env_map)
    if policy == "single":
        return ["all"] * len(examples)
    if policy == "rule":
        return rule_environments(examples, config.environments.env_rule, config.environments.env_count)
    if policy == "infer":
        return None
    raise ValueError(f"unknown environment policy {policy!r}")


def places_unseen_examples(config: InvRatConfig, policy: str) -> bool:
    """Whether the policy gives an environment to examples outside training (column, the hash rule)."""
    return policy == "column" or (policy == "rule" and config.environments.env_rule == "hash")


def dev_environments(
    examples: Sequence[Example], config: InvRatConfig, policy: str, env_order: Sequence[str]
) -> list[int] | None:
    """Env index per dev example where the policy places unseen examples, else None.

    None as well when a dev example has no env (column) or falls in an environment training never saw.
    """
    if not places_unseen_examples(config, policy):
        return None
    if policy == "rule":
        names = rule_environments(examples, "hash", config.environments.env_count)
    elif examples and all(ex.env is not None for ex in examples):
        try:
            names = column_environments(examples, config.environments.env_map)
        except DataError:
            return None
    else:
        return None
    where = {n: i for i, n in enumerate(env_order)}
    return [where[n] for n in names] if all(n in where for n in names) else None


def index_environments(names: Sequence[str]) -> tuple[list[int], list[str]]:
    """(env index per example, sorted env names)."""
    order = sorted(set(names))
    where = {n: i for i, n in enumerate(order)}
    return [where[n] for n in names], order
