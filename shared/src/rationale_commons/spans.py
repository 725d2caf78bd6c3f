"""Rationale spans ↔ 0/1 masks over a document's words.

A span is ``(start, end)`` with ``end`` exclusive, as ERASER's ``start_token`` /
``end_token`` (DeYoung et al., ACL 2020, §3). A human rationale is the union of
its spans; :func:`mask_to_spans` gives the minimal list of maximal runs, so
``mask_to_spans(spans_to_mask(s, n))`` is the canonical (sorted, merged) form of ``s``.
:func:`evidence_mask` is the one way an ERASER annotation becomes a word mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from rationale_commons.errors import DataError
from rationale_commons.records import Annotation

#: ``(docid, first word in the example, number of words)`` per document of an example.
Layout = Sequence[tuple[str, int, int]]


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


def evidence_mask(
    annotation: Annotation,
    layout: Layout,
    *,
    path: str | Path | None = None,
    line: int | None = None,
) -> list[int]:
    """The union of ``annotation``'s evidence spans as a 0/1 mask over an example's words.

    ``layout`` says where each of the example's documents sits (one document of ``n`` words:
    ``[(docid, 0, n)]``; see :func:`~rationale_commons.loaders.eraser.document_layout`). The mask is built from the evidences alone (a rationale the
    example had before is replaced, never merged); no evidence gives all zeros, and an empty span
    (``start == end``, ERASER Movies has some) selects nothing. An evidence naming a document
    outside the layout, or a span that is reversed, negative or past its document's end, is a
    :class:`DataError` naming the annotation (and ``path:line`` when given), never clipped.
    """
    where = {docid: (offset, length) for docid, offset, length in layout}
    spans = []
    for ev in annotation.all_evidences():
        span = f"evidence span ({ev.start_token}, {ev.end_token})"
        offset, length = where.get(ev.docid, (0, 0))
        if ev.docid not in where:
            problem = f"evidence docid {ev.docid!r} is not among the annotation's documents ({', '.join(where)})"
        elif ev.end_token < ev.start_token:
            problem = f"{span} is reversed"
        elif ev.start_token < 0 or ev.end_token > length:
            problem = f"{span} is outside document {ev.docid!r} ({length} words)"
        else:
            spans.append((offset + ev.start_token, offset + ev.end_token))
            continue
        raise DataError(
            f"annotation {annotation.annotation_id!r}: {problem}", path=path, line=line, field="evidences"
        )
    return spans_to_mask(spans, sum(length for _, _, length in layout))


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
