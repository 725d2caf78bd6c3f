"""Lifelong-learning metrics over a score matrix (docs/algorithms.md §4).

``R[i][j]`` is the score on task ``j`` after training task ``i`` (0-based here; the
paper formulas are 1-based). ``T`` tasks give a ``T x T`` matrix. Scores may be
fractions or percentages: every metric is in the same unit as ``R``.

Entries may be ``None`` (or NaN) where a task was not evaluated, e.g. the upper
triangle when only tasks seen so far are scored. A metric that needs a missing
entry is ``None``; ``forgetting`` takes its maximum over the entries present.

- ACC  = mean_j R[T-1][j]
- BWT  = mean_{j < T-1} (R[T-1][j] - R[j][j])                 (negative = forgetting)
- FWT  = mean_{j >= 1} (R[j-1][j] - b[j])                      (b = scores before any training)
- Forgetting (Chaudhry et al. 2018) = mean_{j < T-1} (max_{l < T-1} R[l][j] - R[T-1][j])

With ``T = 1`` BWT, FWT and forgetting are undefined (``None``, not 0). A single
row over ``T > 1`` tasks (multitask training: one model for all tasks) gives ACC
only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "METRIC_DEFINITIONS",
    "average_accuracy",
    "backward_transfer",
    "forgetting",
    "forward_transfer",
    "lifelong_metrics",
]

METRIC_DEFINITIONS: dict[str, str] = {
    "acc": "ACC = mean over tasks j of R[T][j] (score on each task after training the last task)",
    "bwt": "BWT = mean over j < T of R[T][j] - R[j][j] (negative = forgetting)",
    "fwt": "FWT = mean over j > 1 of R[j-1][j] - b[j] (b = score before any training)",
    "forgetting": (
        "Forgetting = mean over j < T of max over l < T of R[l][j] - R[T][j] (Chaudhry et al. 2018)"
    ),
}

ScoreMatrix = Sequence[Sequence[float | None]] | np.ndarray


def _as_matrix(score_matrix: ScoreMatrix) -> np.ndarray:
    """A float array (rows, T) with NaN for missing entries; ValueError on a bad shape."""
    rows = list(score_matrix)
    if not rows:
        raise ValueError("score matrix is empty: expected T x T scores (or one row of T scores)")
    try:
        lengths = {len(row) for row in rows}
    except TypeError as err:
        raise ValueError("score matrix must be a sequence of rows (a 2-D table of scores)") from err
    if len(lengths) != 1:
        raise ValueError(f"score matrix rows have different lengths: {sorted(lengths)}")
    n_tasks = lengths.pop()
    if n_tasks == 0:
        raise ValueError("score matrix rows are empty")
    matrix = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64
    )
    if np.isinf(matrix).any():
        raise ValueError("score matrix holds an infinite value")
    if matrix.shape[0] not in (1, n_tasks):
        raise ValueError(
            f"score matrix has shape {matrix.shape}: expected T x T "
            "(row i = scores after training task i) or a single row"
        )
    return matrix


def _mean_or_none(values: np.ndarray) -> float | None:
    if values.size == 0 or np.isnan(values).any():
        return None
    return float(values.mean())


def average_accuracy(score_matrix: ScoreMatrix) -> float | None:
    """ACC: mean score over all tasks after the last task (None if one is missing)."""
    matrix = _as_matrix(score_matrix)
    return _mean_or_none(matrix[-1])


def backward_transfer(score_matrix: ScoreMatrix) -> float | None:
    """BWT: mean change on each earlier task between just after learning it and the end."""
    matrix = _as_matrix(score_matrix)
    n_rows, n_tasks = matrix.shape
    if n_tasks < 2 or n_rows != n_tasks:
        return None
    last = n_tasks - 1
    return _mean_or_none(matrix[last, :last] - np.diag(matrix)[:last])


def forward_transfer(
    score_matrix: ScoreMatrix, baseline: Sequence[float | None] | np.ndarray | None
) -> float | None:
    """FWT: mean score on task j just before learning it, minus its untrained score b[j]."""
    matrix = _as_matrix(score_matrix)
    n_rows, n_tasks = matrix.shape
    if baseline is None:
        return None
    base = np.array([math.nan if v is None else float(v) for v in baseline], dtype=np.float64)
    if base.shape != (n_tasks,):
        raise ValueError(
            f"baseline has {base.size} scores but the score matrix has {n_tasks} tasks"
        )
    if n_tasks < 2 or n_rows != n_tasks:
        return None
    before = np.array([matrix[j - 1, j] for j in range(1, n_tasks)])
    return _mean_or_none(before - base[1:])


def forgetting(score_matrix: ScoreMatrix) -> float | None:
    """Average forgetting (Chaudhry et al. 2018): best earlier score minus final score, per old task."""
    matrix = _as_matrix(score_matrix)
    n_rows, n_tasks = matrix.shape
    if n_tasks < 2 or n_rows != n_tasks:
        return None
    last = n_tasks - 1
    drops = []
    for j in range(last):
        earlier = matrix[:last, j]
        earlier = earlier[~np.isnan(earlier)]
        if earlier.size == 0 or np.isnan(matrix[last, j]):
            return None
        drops.append(earlier.max() - matrix[last, j])
    return float(np.mean(drops))


def lifelong_metrics(
    score_matrix: ScoreMatrix, baseline: Sequence[float | None] | np.ndarray | None = None
) -> dict[str, float | None]:
    """All four metrics as ``{"acc", "bwt", "fwt", "forgetting"}``; ``None`` where undefined."""
    return {
        "acc": average_accuracy(score_matrix),
        "bwt": backward_transfer(score_matrix),
        "fwt": forward_transfer(score_matrix, baseline),
        "forgetting": forgetting(score_matrix),
    }
