"""Model selection: which (restart, epoch) of the game is kept (docs/algorithms.md §3).

The kept model is the (restart, epoch) with the best dev accuracy of the environment-agnostic
predictor f_i, among epochs whose dev selection rate is within ``selection_tolerance`` of ``alpha``
(all epochs when none is); equal accuracies go to the lower dev loss of f_i. ``select_by =
"invariance"`` ranks the eligible epochs by the dev objective instead.
"""

from __future__ import annotations

import math

from invrat.config import InvRatConfig

#: What ``selection.json`` (and each epoch's ``selected_so_far``) records of the kept epoch.
KEPT_FIELDS = ("restart", "epoch", "eligible", "dev_acc", "dev_loss", "dev_objective", "dev_selection_rate")


def gap_weight(config: InvRatConfig, env_player: bool) -> float:
    """The weight of the dev environment gap in the dev objective (0 with the env player off: no env information)."""
    if not env_player:
        return 0.0
    return config.game.lambda_diff if config.experimental.selection_lambda is None else config.experimental.selection_lambda


def judge(record: dict, best: dict | None, config: InvRatConfig, weight: float, *, warmup: bool) -> dict | None:
    """Add the epoch's ``dev_objective`` (where dev envs exist) and ``eligible`` to ``record``;
    the record to keep when it beats ``best``, else None."""
    objective = dev_objective(record, weight, config.experimental.selection_gap_slack)
    if objective is not None:
        record["dev_objective"] = objective
    record["eligible"] = not warmup and eligible(record, config)
    if best is None or selection_key(record, config.experimental.select_by) > selection_key(best, config.experimental.select_by):
        return {k: record[k] for k in KEPT_FIELDS if k in record}
    return None


def eligible(metrics: dict[str, float], config: InvRatConfig) -> bool:
    tol = config.model_selection.selection_tolerance
    return tol is None or abs(metrics["dev_selection_rate"] - config.game.alpha) <= tol


def selection_key(record: dict, select_by: str = "accuracy") -> tuple[bool, float, float]:
    """Eligible first; then (``accuracy``) the best dev accuracy of f_i (the paper), ties to the lower dev
    loss of f_i, or (``invariance``) the lower dev objective (``dev_objective``).

    Dev accuracy saturates at the label noise on easy data, where the first epoch reaching it would
    otherwise win over a generator that went on improving.
    """
    if select_by == "invariance":
        return record["eligible"], -record.get("dev_objective", math.inf), 0.0
    return record["eligible"], record["dev_acc"], -record.get("dev_loss", math.inf)  # no dev_loss: older runs


def dev_objective(record: dict, gap_weight: float, gap_slack: float = 0.0) -> float | None:
    """Dev loss of f_i + gap_weight * the gap between the worst and best dev environment's loss of f_i;
    None without dev envs.

    ``gap_slack``: standard errors of that gap forgiven, ``max(0, gap - gap_slack * SE)``. An invariant
    rationale's gap is not 0 on a finite dev set but the chance difference of two sample means, and
    a rationale leaning on a spurious feature can close that chance gap instead of widening it.

    Not the game's own h(L_i - L_e): that reads f_e, which lags behind the generator (measured on the
    synthetic budget setting, where it ranked an epoch holding the spurious token first).
    """
    by_env = record.get("dev_loss_by_env")
    if not by_env:
        return None
    worst, best = max(range(len(by_env)), key=by_env.__getitem__), min(range(len(by_env)), key=by_env.__getitem__)
    gap = by_env[worst] - by_env[best]
    se_by_env = record.get("dev_loss_se_by_env")  # absent in runs from before it was logged
    if gap_slack and se_by_env:
        gap = max(0.0, gap - gap_slack * math.hypot(se_by_env[worst], se_by_env[best]))
    return record["dev_loss"] + gap_weight * gap
