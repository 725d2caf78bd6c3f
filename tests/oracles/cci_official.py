"""The official r_lamol CCI arithmetic (``run_critical_freezing.py``, ``find_attn_head_max`` with
``iou-token-level`` and ``percentile`` p = 20), transcribed per example in numpy as that code computes
it: per block, ``np.apply_along_axis`` binarizes every row with its own ``np.percentile`` call, then
scores every row against the reference mask with ``1 - scipy.spatial.distance.pdist(.., "jaccard")``,
and the first flat argmax picks the representative row.

**Two documented fixes applied** (docs/algorithms.md §2), so that its scores are the ones
``rational_lamol.cci`` defines and the two can be compared: block b of the new model is compared
with block b's representative map (the official loop kept only the last block's), and at head
level each head is compared with its own representative row (the official code collapsed the
reference to head 0's). Neither fix changes the amount of work. What differs from ours and is
kept: IoU as ``1 - jaccard distance`` (equal to ``|u & w| / |u | w|`` up to one rounding),
and the per-example choices ``np.argmin`` (block) and the first ``top_k`` of a stable ``argsort``
(head), where ties go to the lower index. The official code ran the 12 blocks in a pool of 12
processes; the benchmark runs this transcription in one process, one thread, like ours.

Used by ``benchmarks/bench_cci_official.py`` and the parity test in ``tests/rational_lamol/test_cci.py``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist

P = 20  # keep the top 20 %: strictly above the 80th percentile


def _binarize_rows(block: np.ndarray) -> np.ndarray:
    """(H, S, D) -> bool: every row above its own 80th percentile, one ``np.percentile`` per row."""
    return np.apply_along_axis(lambda row: row > np.percentile(row, 100 - P), 2, block)


def _row_scores(preds: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(H, S) IoU of every binarized row with ``ref`` (D,), one ``pdist`` call per row."""
    return np.apply_along_axis(lambda row: (1 - pdist([row, ref], "jaccard")).item(), 2, preds)


def block_scores(att_old: np.ndarray, att_new: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(L,) block scores of one example; ``att_*`` (L, H, D, D) float32 cropped, ``gt`` (D,) bool."""
    out = np.empty(att_old.shape[0])
    for b in range(att_old.shape[0]):
        scores = _row_scores(_binarize_rows(att_old[b]), gt)
        h, s = np.unravel_index(np.argmax(scores), scores.shape)
        rm = att_old[b, h, s]
        rm_top = rm > np.percentile(rm, 100 - P)  # fix: block b's own map
        out[b] = _row_scores(_binarize_rows(att_new[b]), rm_top).max()
    return out


def head_scores(att_old: np.ndarray, att_new: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(L, H) head scores of one example; arguments as :func:`block_scores`."""
    L, H = att_old.shape[:2]
    out = np.empty((L, H))
    for b in range(L):
        scores = _row_scores(_binarize_rows(att_old[b]), gt)
        rm = att_old[b, np.arange(H), np.argmax(scores, axis=1)]  # (H, D)
        rm_top = rm > np.percentile(rm, 100 - P, axis=1)[:, None]
        preds = _binarize_rows(att_new[b])
        for h in range(H):  # fix: head h against its own representative row
            out[b, h] = _row_scores(preds[h : h + 1], rm_top[h]).max()
    return out


def block_choice(scores: np.ndarray) -> int:
    """The example's block: ``np.argmin`` (the lower index wins a tie)."""
    return int(np.argmin(scores))


def head_choice(scores: np.ndarray, top_k: int = 12) -> list[tuple[int, int]]:
    """The example's ``top_k`` lowest (block, head) pairs, by a stable sort of the flat scores."""
    flat = np.argsort(scores, axis=None, kind="stable")[:top_k]
    return [(int(b), int(h)) for b, h in zip(*np.unravel_index(flat, scores.shape), strict=True)]
