"""CCI as the reference code computed it — a direct numpy loop over blocks, heads and rows — but
with the corrected definitions of docs/algorithms.md §2 (same block b of the old model, each head's own
GT comparison, empty-GT examples skipped, IoU = 1 when both masks are empty).

This is the baseline of ``bench_cci.py`` and the parity reference of ``tests/rational_lamol/test_cci.py``.
It is deliberately straightforward: one ``np.percentile`` call per row, as the reference did.
"""

from __future__ import annotations

import numpy as np


def binarize(row: np.ndarray, beta: float = 20.0) -> np.ndarray:
    """P_beta: 1 where the value is strictly greater than the row's (100 - beta)-th percentile."""
    return row > np.percentile(row, 100.0 - beta)


def iou(u: np.ndarray, w: np.ndarray) -> float:
    union = np.logical_or(u, w).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(u, w).sum()) / float(union)


def _rows(S: int, gt: np.ndarray, row_filter: str) -> range:
    if row_filter == "all":
        return range(S)
    last = int(np.nonzero(gt)[0].max())
    return range(last, S)


def block_scores_loop(
    att_old, att_new, gt, beta=20.0, row_filter="all", n_blocks=None
) -> np.ndarray:
    """(L,) scores of one example; ``att_*`` numpy arrays (L, H, S, D), ``gt`` (D,) bool.

    ``n_blocks`` scores only the first blocks (the benchmark times long documents on a few blocks:
    the cost is linear in blocks); the others are left NaN.
    """
    L, H, S, _ = att_old.shape
    rows = _rows(S, gt, row_filter)
    scores = np.full(L, np.nan)
    for b in range(L if n_blocks is None else n_blocks):
        best, rm = -1.0, None
        for h in range(H):
            for s in rows:
                p = binarize(att_old[b, h, s], beta)
                v = iou(p, gt)
                if v > best:  # strict: the first maximum (lower h, then lower s) wins
                    best, rm = v, att_old[b, h, s]
        p_rm = binarize(rm, beta)
        score = -1.0
        for h in range(H):
            for s in rows:
                score = max(score, iou(binarize(att_new[b, h, s], beta), p_rm))
        scores[b] = score
    return scores


def head_scores_loop(
    att_old, att_new, gt, beta=20.0, row_filter="all", n_blocks=None
) -> np.ndarray:
    """(L, H) scores of one example (``n_blocks``: as in :func:`block_scores_loop`)."""
    L, H, S, _ = att_old.shape
    rows = _rows(S, gt, row_filter)
    scores = np.full((L, H), np.nan)
    for b in range(L if n_blocks is None else n_blocks):
        for h in range(H):
            best, rm = -1.0, None
            for s in rows:
                v = iou(binarize(att_old[b, h, s], beta), gt)
                if v > best:
                    best, rm = v, att_old[b, h, s]
            p_rm = binarize(rm, beta)
            scores[b, h] = max(iou(binarize(att_new[b, h, s], beta), p_rm) for s in rows)
    return scores


def _rank_loop(hist: list[float], means: list[float], tie_seed: int) -> list[int]:
    draw = np.random.default_rng(tie_seed).permutation(len(hist))
    return sorted(range(len(hist)), key=lambda i: (-hist[i], means[i], draw[i]))


def vote_blocks_loop(all_scores: list[np.ndarray], tie_seed: int = 0) -> tuple[int | None, list[float]]:
    """One vote per example, shared equally by the blocks tied at its minimum."""
    if not all_scores:
        return None, []
    hist = [0.0] * len(all_scores[0])
    for sc in all_scores:
        lowest = [b for b in range(len(sc)) if sc[b] == min(sc)]
        for b in lowest:
            hist[b] += 1 / len(lowest)
    hist = [round(v, 9) for v in hist]
    means = [float(np.mean([sc[b] for sc in all_scores])) for b in range(len(hist))]
    return _rank_loop(hist, means, tie_seed)[0], hist


def vote_heads_loop(all_scores: list[np.ndarray], k: int = 12, tie_seed: int = 0):
    """k votes per example: one per pair below its k-th lowest score, the rest shared by the tied."""
    if not all_scores:
        return [], []
    L, H = all_scores[0].shape
    k = min(k, L * H)
    hist = [0.0] * (L * H)
    for sc in all_scores:
        flat = list(sc.reshape(-1))
        kth = sorted(flat)[k - 1]
        below = [i for i, v in enumerate(flat) if v < kth]
        tied = [i for i, v in enumerate(flat) if v == kth]
        for i in below:
            hist[i] += 1
        for i in tied:
            hist[i] += (k - len(below)) / len(tied)
    hist = [round(v, 9) for v in hist]
    means = [float(np.mean([sc.reshape(-1)[i] for sc in all_scores])) for i in range(L * H)]
    ranked = _rank_loop(hist, means, tie_seed)[:k]
    return [(i // H, i % H) for i in ranked], np.array(hist).reshape(L, H).tolist()


def identify_loop(examples, level="block", top_k=12, beta=20.0, row_filter="all"):
    """``examples``: iterable of (att_old (L,H,D,D), att_new, gt (D,)) already cropped, numpy."""
    scores, skipped = [], 0
    for att_old, att_new, gt in examples:
        gt = np.asarray(gt, dtype=bool)
        if not gt.any():
            skipped += 1
            continue
        fn = block_scores_loop if level == "block" else head_scores_loop
        scores.append(fn(np.asarray(att_old), np.asarray(att_new), gt, beta, row_filter))
    if level == "block":
        chosen, hist = vote_blocks_loop(scores)
        chosen = [] if chosen is None else [chosen]
    else:
        chosen, hist = vote_heads_loop(scores, top_k)
    return chosen, hist, len(scores), skipped
