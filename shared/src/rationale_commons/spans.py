"""Rationale spans ↔ 0/1 masks over a document's words.

A span is ``(start, end)`` with ``end`` exclusive, as ERASER's ``start_token`` /
``end_token`` (DeYoung et al., ACL 2020, §3). A human rationale is the union of
its spans; :func:`mask_to_spans` gives the minimal list of maximal runs, so
``mask_to_spans(spans_to_mask(s, n))`` is the canonical (sorted, merged) form of ``s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rationale_commons.errors import DataError


def mask_to_spans(mask: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous runs of selected positions, ``(start, end)`` with ``end`` exclusive.

    Any truthy entry counts as selected (0/1 ints, bools, 0./1. floats).
    ``[0, 1, 1, 0, 1] → [(1, 3), (4, 5)]``.
    """
    spans: list[tuple[int, int]] = []
    start = -1
    i = -1
    for i, value in enumerate(mask):
        if value:
            if start < 0:
                start = i
        elif start >= 0:
            spans.append((start, i))
            start = -1
    if start >= 0:
        spans.append((start, i + 1))
    return spans


def spans_to_mask(spans: Iterable[tuple[int, int]], length: int) -> list[int]:
    """The 0/1 mask of length ``length`` covering the union of ``spans``.

    Empty spans (``start == end``) select nothing. Raises :class:`DataError`
    (a ``ValueError``) when a span is reversed or lies outside ``[0, length]``.
    """
    if length < 0:
        raise DataError(f"mask length must be >= 0, got {length}")
    mask = [0] * length
    for span in spans:
        start, end = span
        if not 0 <= start <= end <= length:
            raise DataError(f"span ({start}, {end}) is outside [0, {length}] or reversed")
        mask[start:end] = [1] * (end - start)
    return mask


def scores_to_mask(scores: Sequence[float], fraction: float) -> list[int]:
    """Select the ``round(fraction * len(scores))`` highest-scoring positions.

    Ties go to the earlier position, so the result is deterministic. This is
    the top-k discretisation ERASER uses for soft scores (k as a fraction of
    the document length).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    k = round(fraction * len(scores))
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    mask = [0] * len(scores)
    for i in order[:k]:
        mask[i] = 1
    return mask
