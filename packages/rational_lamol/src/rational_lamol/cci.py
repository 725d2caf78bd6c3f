"""Critical Component Identification (CCI), Rational LAMOL (Kanwatchara et al., ACL-IJCNLP 2021) §3.

docs/algorithms.md §2 is the specification; the names below follow it. For one example with D document
tokens, ``A[b, h, s, :]`` is the attention of query position s over the D document keys, in block
b and head h (post-softmax, cropped to the document). Then

- ``P_beta(v)``: 1 where ``v`` is *strictly greater* than its own ``(100 - beta)``-th percentile,
  the percentile computed with linear interpolation exactly as ``numpy.percentile`` does. With ties
  (e.g. the many zeros of a causal row) this keeps fewer or more than beta % — by definition.
- ``IoU(u, w) = |u & w| / |u | w|``, and 1 when both are empty.
- Block level: ``(h*, s*) = argmax_(h,s) IoU(P(A_old[b,h,s]), GT)``, ``RM_b = A_old[b,h*,s*]``,
  ``score_b = max_(h,s) IoU(P(A_new[b,h,s]), P(RM_b))`` — block b of the new model is compared
  with the *same* block b of the old model (the reference code used the last block: a bug). Each
  example votes for ``argmin_b score_b``; the chosen block is the mode of the votes.
- Head level: per (b, h), ``s*_h = argmax_s IoU(P(A_old[b,h,s]), GT)`` with each head's own GT
  comparison (the reference collapsed GT to head 0: a bug), ``score_(b,h) = max_s IoU(P(A_new[b,h,s]),
  P(RM_(b,h)))``. Each example votes for its K lowest pairs; the K most voted pairs are chosen.

Ties, with no index bias. Within an example, components tied at its minimum (block level) or at
its K-th lowest score (head level) share the example's vote equally (fractional votes). Between
components with equal votes, the lower mean score (the more plastic) wins, and what is still tied
is decided by a draw seeded by the caller. ``CCIResult.n_tied`` counts the examples whose vote was
shared. (The reference code let the lower index win every tie: on short documents, where many
blocks tie, that voted block 0 whatever the attention said.) IoUs are exact ratios of counts in
float64, so equal ratios compare equal.

Rows. ``row_filter="all"`` (the default, the paper) uses every document query row, including the
early causal rows that only see a prefix of the document (their zeros count as entries of the row
for the percentile: the percentile is always over the full cropped row of D entries).
``row_filter="after_last_rationale"`` keeps rows ``s >= `` the last rationale position, the rows
that see the whole rationale. Results record which one was used.

Everything is vectorized over blocks, heads and rows; the per-example crop is a loop over the batch
(documents differ in length) taking each block's slice of the contiguous document span, a view;
long documents are scored one block at a time, short ones a few stacked blocks at a time. IoU
counts are exact: 0/1 masks are written as float32 by ``torch.gt`` in cache-sized tiles of rows,
multiplied (integer counts below 2**24) and divided in float64. Causal rows take the percentile
from a prefix of the row, or need none (threshold 0): :func:`causal_threshold`, bit for bit
:func:`percentile_threshold`; their masks are counted on the prefix too. On CPU the percentile's
order statistics come from numpy's vectorized sort or partition (:func:`_order_pair`).

Axis letters: N examples, B batch, L blocks, H heads, T tokens, S query rows, D document keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn

RowFilter = Literal["all", "after_last_rationale"]
ROW_FILTERS: tuple[str, ...] = get_args(RowFilter)
Level = Literal["block", "head"]

# Blocks are scored in chunks whose (L, H, S, D) attention has at most this many entries, to bound
# memory at long documents (12 x 12 x 1024 x 1024 float32 is 600 MB per model). Blocks are
# independent (block b is only compared with block b), so chunking changes nothing in the result.
MAX_CHUNK_ELEMENTS = 2**26


# --------------------------------------------------------------------------------------------
# P_beta and IoU
# --------------------------------------------------------------------------------------------
def percentile_threshold(
    values: torch.Tensor, beta: float = 20.0, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """The ``(100 - beta)``-th percentile of each row (last axis), ``(..., 1)``, as numpy computes it.

    ``numpy.percentile(v, 100 - beta)`` (method "linear"): virtual index ``i = (n - 1) * q``,
    ``lo = floor(i)``, ``t = i - lo``, result ``a + (b - a) * t`` (``b - (b - a) * (1 - t)`` when
    ``t >= 0.5``) with ``a, b`` the lo-th and (lo+1)-th smallest values. ``valid`` (same shape, bool)
    restricts each row to its valid entries (n varies per row); rows without any give +inf.
    """
    if not 0.0 <= beta <= 100.0:
        raise ValueError(f"beta must be in [0, 100], got {beta}")
    q = (100.0 - float(beta)) / 100.0
    if valid is None:
        return _full_row_threshold(values, q)
    # Rows of varying length: sort with the invalid entries pushed to the end.
    valid = valid.expand_as(values)
    ordered = values.masked_fill(~valid, math.inf).sort(dim=-1).values
    n = valid.sum(dim=-1, keepdim=True).to(torch.float64)
    virtual = (n - 1) * q  # (..., 1) float64
    lo = virtual.floor()
    t = virtual - lo
    top = (n - 1).clamp(min=0)
    lo = torch.minimum(lo, top).clamp(min=0).long()
    hi = torch.minimum(lo + 1, top.long())
    at_top = virtual >= n - 1  # numpy: past the last index -> the maximum
    a = ordered.gather(-1, lo)
    b = ordered.gather(-1, hi)
    diff = b - a
    low_side = a + diff * t.to(values.dtype)
    high_side = b - diff * (1 - t).to(values.dtype)
    threshold = torch.where(t >= 0.5, high_side, low_side)
    threshold = torch.where(at_top, b, threshold)
    return threshold.masked_fill(n == 0, math.inf)


def _lerp_like_numpy(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """numpy's ``_lerp`` with a Python-float weight (computed in ``a``'s dtype, as numpy does)."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def _full_row_threshold(values: torch.Tensor, q: float) -> torch.Tensor:
    """The percentile over full rows of D entries: only the two order statistics around the virtual
    index are needed, found by a selection (:func:`_order_pair`), not a sort."""
    D = values.shape[-1]
    virtual = (D - 1) * q  # Python float64, like numpy's (n - 1) * q
    if virtual >= D - 1:
        return values.amax(dim=-1, keepdim=True)
    lo = math.floor(virtual)
    a, b = _order_pair(values, lo)
    return _lerp_like_numpy(a, b, virtual - lo)


def _order_pair(values: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``j``-th and ``(j + 1)``-th smallest entries of each row (last axis, duplicates counted,
    ``0 <= j < n - 1``), ``(..., 1)`` each.

    On CPU a ``numpy.sort`` of rows up to :data:`SORT_MAX_ENTRIES` entries and one
    ``numpy.partition`` of longer ones (both vectorized in numpy 2, 3-7x faster than ``topk`` on
    attention rows of 128-1,024 entries); elsewhere a partial ``topk`` from the nearer end.
    Either way the values are exact, so the thresholds are the same bit for bit.
    """
    if _numpy_view_ok(values):
        return _order_pair_numpy(values, j)
    return _order_pair_topk(values, j)


def _numpy_view_ok(values: torch.Tensor) -> bool:
    """Whether ``values`` can be read as a numpy array without a copy (CPU, float32 or float64)."""
    return values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64)


#: rows of at most this many entries are sorted whole (numpy 2's vectorized sort: 1.5-1.8x faster
#: than a partition and the minimum above it at 128-512 entries on the development machine's
#: AVX-512 CPU, slower at 1,024); longer rows are partitioned
SORT_MAX_ENTRIES = 512


def _order_pair_numpy(values: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = values.shape[-1]
    rows = values.detach().numpy()
    if n <= SORT_MAX_ENTRIES:
        ordered = np.sort(rows, axis=-1)
        return torch.from_numpy(ordered[..., j : j + 1].copy()), torch.from_numpy(ordered[..., j + 1 : j + 2].copy())
    # The extreme of the entries beyond the partition point is torch's reduction: numpy reduces
    # short rows one at a time (4x slower at 100 entries per row).
    if n - j - 1 <= j + 1:  # nearer the top: place sorted[j], the rest above it
        part = torch.from_numpy(np.partition(rows, j, axis=-1))
        return part[..., j : j + 1].contiguous(), part[..., j + 1 :].amin(dim=-1, keepdim=True)
    part = torch.from_numpy(np.partition(rows, j + 1, axis=-1))  # nearer the bottom
    return part[..., : j + 1].amax(dim=-1, keepdim=True), part[..., j + 1 : j + 2].contiguous()


def _order_pair_topk(values: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = values.shape[-1]
    if j + 1 < n - j:  # nearer the bottom: sorted[j], sorted[j+1] = the 2 largest of the j+2 smallest
        part = values.topk(j + 2, dim=-1, largest=False, sorted=False).values
        b = part.amax(dim=-1, keepdim=True)
        return _second(part, b, largest=True), b
    # nearer the top: sorted[j], sorted[j+1] = the 2 smallest of the n-j largest
    part = values.topk(n - j, dim=-1, largest=True, sorted=False).values
    a = part.amin(dim=-1, keepdim=True)
    return a, _second(part, a, largest=False)


def _second(part: torch.Tensor, extreme: torch.Tensor, *, largest: bool) -> torch.Tensor:
    """The second largest (smallest) entry of each row of ``part`` counting duplicates, given the first."""
    is_extreme = part == extreme
    fill = -math.inf if largest else math.inf
    rest = part.masked_fill(is_extreme, fill)
    rest = rest.amax(dim=-1, keepdim=True) if largest else rest.amin(dim=-1, keepdim=True)
    return torch.where(is_extreme.sum(dim=-1, keepdim=True) >= 2, extreme, rest)


def percentile_binarize(
    values: torch.Tensor, beta: float = 20.0, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """``P_beta``: True where a value is strictly greater than its row's ``(100 - beta)``-th percentile.

    The row is the last axis, all D entries (zeros included) — the paper's definition. ``valid``
    (bool, broadcastable) computes the percentile over the valid entries only, e.g. the keys a causal
    row can see; invalid entries are never selected.
    """
    threshold = percentile_threshold(values, beta, valid)
    out = values > threshold
    if valid is not None:
        out = out & valid
    return out


#: row bands of :func:`causal_threshold` (more bands: shorter prefixes, more calls)
CAUSAL_BANDS = 8


#: ``(r0, r1, p)``: rows ``r0:r1`` of a map are known to be exactly zero from key ``p`` on
Extent = tuple[int, int, int]


def causal_threshold(values: torch.Tensor, beta: float = 20.0, first: int = 0) -> torch.Tensor:
    """:func:`percentile_threshold` of full rows, equal to it bit for bit, faster on causal rows.

    Row ``i`` of ``values`` ``(..., S, D)`` is expected to be causal: zero at keys ``> first + i``
    and non-negative (post-softmax attention). Rows are taken in bands; a band is checked (exact
    zeros after its last row's prefix ``p``; none of its k largest entries negative) and, when it
    passes, needs only its prefix: with at least ``lo + 2`` zeros (``p <= D - lo - 2``) both order
    statistics are 0 and so is the threshold, with no selection; otherwise the top ``D - lo``
    entries lie in the prefix (``p >= D - lo``), and the selection reads ``p`` entries instead of
    ``D``. A band that fails the check, and beta > 50 (the order statistics near the bottom), take
    the full-row path.
    """
    return _causal_threshold_with_extents(values, beta, first)[0]


def _causal_threshold_with_extents(
    values: torch.Tensor, beta: float, first: int
) -> tuple[torch.Tensor, list[Extent]]:
    """:func:`causal_threshold`, and the bands of rows it found zero after a prefix (every row
    with ``p = D`` where it did not check): the IoU counts then read the prefixes only."""
    if not 0.0 <= beta <= 100.0:
        raise ValueError(f"beta must be in [0, 100], got {beta}")
    q = (100.0 - float(beta)) / 100.0
    S, D = values.shape[-2:]
    virtual = (D - 1) * q
    lo = math.floor(virtual)
    if virtual >= D - 1 or lo + 1 < D - lo or S == 0:
        return _full_row_threshold(values, q), [(0, S, D)]
    k = D - lo
    t = virtual - lo
    out = torch.empty((*values.shape[:-1], 1), dtype=values.dtype, device=values.device)
    n_zero = min(S, max(0, D - lo - 2 - first))  # rows whose prefix leaves >= lo + 2 zeros
    step = max(1, math.ceil((S - n_zero) / CAUSAL_BANDS))
    # numpy's sort costs the same at every row length up to the next power of two: no band
    # straddles one (a band of prefixes 200-300 would sort all its rows at the cost of 512)
    powers = [(1 << i) - first for i in range(1, (first + S).bit_length())]
    edges = sorted({0, n_zero, S, *range(n_zero + step, S, step), *(r for r in powers if n_zero < r < S)})
    extents = []
    for r0, r1 in zip(edges[:-1], edges[1:], strict=True):
        if r0 == r1:
            continue
        band, p = values[..., r0:r1, :], min(D, first + r1)
        threshold = _prefix_threshold(band, p, k, t, zero=r1 <= n_zero) if _zero_after(band, p) else None
        if threshold is None:
            out[..., r0:r1, :] = _full_row_threshold(band, q)
            p = D
        else:
            out[..., r0:r1, :] = threshold
        extents.append((r0, r1, p))
    return out, extents


def _prefix_threshold(band: torch.Tensor, p: int, k: int, t: float, *, zero: bool) -> torch.Tensor | float | None:
    """The threshold of rows that are zero from key ``p`` on, from their prefix alone, or None
    where a negative entry makes the prefix insufficient.

    ``zero``: the rows hold at least ``lo + 2`` zeros and at most ``D - lo - 2 <= lo`` other
    entries, so sorted positions ``lo`` and ``lo + 1`` are zeros whatever their signs. Otherwise
    the row's ``k`` largest entries are the prefix's ``k`` largest whenever the k-th of them is not
    below the zeros that follow: checked on the order statistics found, not on every entry.
    """
    if zero:
        return 0.0
    prefix = band[..., : max(p, k)]
    a, b = _order_pair(prefix, prefix.shape[-1] - k)
    return _lerp_like_numpy(a, b, t) if bool((a >= 0).all()) else None


def _zero_after(band: torch.Tensor, p: int) -> bool:
    """Whether every row of ``band`` is exactly zero from key ``p`` on (numpy's ``any`` on CPU:
    3-4x faster than torch's on these strided slices)."""
    rest = band[..., p:]
    return not (rest.detach().numpy().any() if _numpy_view_ok(rest) else bool(rest.any()))


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a & b| / |a | b|`` over the last axis (broadcasting), 1.0 when both are empty (float64)."""
    a, b = a.bool(), b.bool()
    inter = (a & b).sum(dim=-1)
    union = (a | b).sum(dim=-1)
    return torch.where(union == 0, 1.0, inter.double() / union.clamp(min=1).double())


#: rows of masks are written in tiles of at most this many entries (4 MB of float32): one small
#: buffer stays in cache, where a whole (L, H, S, D) mask costs fresh pages (~0.1 s per 200 MB)
TILE_ELEMENTS = 2**20


def _tile_elements(device: torch.device) -> int:
    """Entries per tile of masks: cache-sized on CPU; a whole chunk on a GPU, which has no such
    cache to fit and pays per kernel launch instead (hundreds of small tiles per example at
    1,024 tokens). Counts are exact either way, so the tile size never changes a score."""
    return TILE_ELEMENTS if device.type == "cpu" else MAX_CHUNK_ELEMENTS


def _iou_masks(
    values: torch.Tensor, threshold: torch.Tensor, ref: torch.Tensor, extents: Sequence[Extent] | None = None
) -> torch.Tensor:
    """IoU of every row's mask ``values > threshold`` with ``ref``, 1.0 when both are empty: (..., S).

    ``values`` (..., S, D), ``threshold`` (..., S, 1) non-negative, ``ref`` (..., D) 0/1 float32
    broadcast over S. ``extents``: rows known to be zero after a prefix, whose masks are then
    counted on the prefix alone (a zero is never above a non-negative threshold). Masks are written
    as 0/1 float32 by ``torch.gt`` (about 10x cheaper than a boolean mask converted to float), a
    tile of rows at a time; counts are integers below 2**24, exact in float32 whatever the order
    of summation, and divided in float64. The intersections are ``ref`` as a row times the tile
    transposed: on CPU a batch of matrix-vector products the other way round (one per block or
    head) takes a slow path, about 10x slower.
    """
    *lead, S, D = values.shape
    rows = max(1, min(S, _tile_elements(values.device) // max(1, math.prod(lead) * D)))
    buf = torch.empty(math.prod(lead) * rows * D, dtype=torch.float32, device=values.device)
    inter = torch.empty((*lead, S), dtype=torch.float32, device=values.device)
    count = torch.empty_like(inter)
    for r0, r1, p in extents or [(0, S, D)]:
        ref_row = ref[..., :p].unsqueeze(-2)  # (..., 1, p)
        step = max(rows, rows * D // max(1, p))  # the same tile size on shorter rows
        for t0 in range(r0, r1, step):
            t1 = min(r1, t0 + step)
            tile = buf[: math.prod(lead) * (t1 - t0) * p].view(*lead, t1 - t0, p)
            mask = torch.gt(values[..., t0:t1, :p], threshold[..., t0:t1, :], out=tile)
            inter[..., t0:t1] = torch.matmul(ref_row, mask.transpose(-1, -2)).squeeze(-2)
            count[..., t0:t1] = mask.sum(dim=-1)
    union = (count + ref.sum(dim=-1, keepdim=True) - inter).double()
    return torch.where(union == 0, 1.0, inter.double() / union.clamp(min=1.0))


# --------------------------------------------------------------------------------------------
# Scores for one example
# --------------------------------------------------------------------------------------------
def check_row_filter(row_filter: str) -> None:
    if row_filter not in ROW_FILTERS:
        raise ValueError(f"row_filter must be one of {ROW_FILTERS}, got {row_filter!r}")


def _first_row(att: torch.Tensor, gt: torch.Tensor, row_filter: str) -> int:
    """The first kept query row: 0, or the last rationale position."""
    check_row_filter(row_filter)
    if row_filter == "all":
        return 0
    if att.shape[-2] != att.shape[-1]:
        raise ValueError(
            "row_filter='after_last_rationale' needs one query row per document token (S == D)"
        )
    return int(gt.nonzero().max()) if bool(gt.any()) else 0


#: attention of one example: ``(L, H, S, D)``, or one ``(H, S, D)`` per block (views of the
#: model's per-block maps, scored without ever being copied into one tensor)
Maps = torch.Tensor | Sequence[torch.Tensor]


def _shape(att: Maps) -> tuple[int, ...]:
    """``(L, ...)`` of one example's maps; ``()`` for a list of blocks that differ in shape."""
    if isinstance(att, torch.Tensor):
        return tuple(att.shape)
    shapes = {tuple(a.shape) for a in att}
    return (len(att), *shapes.pop()) if len(shapes) == 1 else ()


def _check(att_old: Maps, att_new: Maps, gt: torch.Tensor) -> tuple[int, ...]:
    """The maps' ``(L, H, S, D)`` shape, after checking that both models' maps and ``gt`` agree."""
    old, new = _shape(att_old), _shape(att_new)
    if len(old) != 4 or old != new:
        raise ValueError(f"expected att_old and att_new of the same shape (L, H, S, D), got {old} and {new}")
    if tuple(gt.shape) != old[-1:]:
        raise ValueError(f"gt must have shape (D,) = ({old[-1]},), got {tuple(gt.shape)}")
    return old


def _chunks(shape: tuple[int, ...]) -> Iterator[slice]:
    L = shape[0]
    per_block = max(1, math.prod(shape[1:]))
    step = max(1, min(L, MAX_CHUNK_ELEMENTS // per_block))
    for lo in range(0, L, step):
        yield slice(lo, min(L, lo + step))


#: blocks given one by one are stacked into groups of at most this many entries (16 MB of float32):
#: on short documents a few calls over every block cost less than many small ones per block
STACK_ELEMENTS = 2**22


def _block_chunks(att_old: Maps, att_new: Maps, shape: tuple[int, ...]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(Lc, H, S, D)`` pieces of both models' maps: slices of a 4-D tensor; or blocks given one
    by one, stacked in small groups where a block is small, else one at a time (a view, no copy)."""
    if isinstance(att_old, torch.Tensor) and isinstance(att_new, torch.Tensor):
        for part in _chunks(shape):
            yield att_old[part], att_new[part]
        return
    per_group = max(1, STACK_ELEMENTS // max(1, math.prod(shape[1:])))
    for lo in range(0, shape[0], per_group):
        old, new = att_old[lo : lo + per_group], att_new[lo : lo + per_group]
        yield (torch.stack(old), torch.stack(new)) if len(old) > 1 else (old[0][None], new[0][None])


@dataclass
class _Thresholded:
    """One model's kept rows of a chunk of blocks, their ``P_beta`` thresholds and zero extents."""

    values: torch.Tensor  # (Lc, H, S, D) float32
    threshold: torch.Tensor  # (Lc, H, S, 1)
    extents: list[Extent]

    @classmethod
    def of(cls, rows: torch.Tensor, beta: float, first: int) -> _Thresholded:
        values = rows.float()
        return cls(values, *_causal_threshold_with_extents(values, beta, first))

    def iou(self, ref: torch.Tensor) -> torch.Tensor:
        """IoU of every row's ``P_beta`` mask with ``ref`` (0/1 float32, broadcast): ``(Lc, H, S)``."""
        return _iou_masks(self.values, self.threshold, ref, self.extents)


def _thresholded_chunks(
    att_old: Maps,
    att_new: Maps,
    gt: torch.Tensor,
    beta: float,
    row_filter: RowFilter,
) -> Iterator[tuple[_Thresholded, _Thresholded, torch.Tensor]]:
    """``(old, new, gt)`` per chunk of blocks: each model's kept rows ``(Lc, H, S, D)`` float32
    with their ``(Lc, H, S, 1)`` thresholds and zero extents (a :class:`_Thresholded`), and the
    ``(D,)`` GT mask as 0/1 float32. Block and head scores differ only in how they pick ``RM``."""
    shape = _check(att_old, att_new, gt)
    first, gt_f = None, None
    for old, new in _block_chunks(att_old, att_new, shape):
        if first is None:  # from the first piece: its shape and device are every piece's
            first = _first_row(old, gt, row_filter)
            gt_f = gt.to(device=old.device, dtype=torch.float32)
        yield _Thresholded.of(old[:, :, first:], beta, first), _Thresholded.of(new[:, :, first:], beta, first), gt_f


def block_scores(
    att_old: Maps,
    att_new: Maps,
    gt: torch.Tensor,
    beta: float = 20.0,
    row_filter: RowFilter = "all",
) -> torch.Tensor:
    """Block-level CCI scores of one example, ``(L,)`` float64 (lower = the new model kept less).

    ``att_old``, ``att_new``: ``(L, H, S, D)`` cropped attention of the old and new model (or one
    ``(H, S, D)`` per block); ``gt``: ``(D,)`` bool rationale mask over the document tokens.
    """
    out = []
    for old, new, gt_f in _thresholded_chunks(att_old, att_new, gt, beta, row_filter):
        Lc, H, S, D = old.values.shape
        best = old.iou(gt_f).reshape(Lc, H * S).argmax(dim=-1)  # (Lc,) first max: lower h, then lower s
        b, h, s = torch.arange(Lc, device=gt_f.device), best // S, best % S
        p_rm = (old.values[b, h, s] > old.threshold[b, h, s]).float()  # (Lc, D) = P(RM_b)
        out.append(new.iou(p_rm[:, None, :]).reshape(Lc, H * S).amax(dim=-1))
    return torch.cat(out)


def head_scores(
    att_old: Maps,
    att_new: Maps,
    gt: torch.Tensor,
    beta: float = 20.0,
    row_filter: RowFilter = "all",
) -> torch.Tensor:
    """Head-level CCI scores of one example, ``(L, H)`` float64; arguments as :func:`block_scores`."""
    out = []
    for old, new, gt_f in _thresholded_chunks(att_old, att_new, gt, beta, row_filter):
        Lc, H, S, D = old.values.shape
        best = old.iou(gt_f).argmax(dim=-1)  # (Lc, H): s*_h, each head against GT
        at = best[:, :, None, None]
        rm = old.values.gather(2, at.expand(Lc, H, 1, D)).squeeze(2)  # (Lc, H, D) = RM_(b,h)
        p_rm = (rm > old.threshold.gather(2, at).squeeze(2)).float()
        out.append(new.iou(p_rm).amax(dim=-1))  # (Lc, H)
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Votes
# --------------------------------------------------------------------------------------------
def _stack(scores: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    if isinstance(scores, torch.Tensor):
        return scores
    return torch.stack([torch.as_tensor(s) for s in scores]) if len(scores) else torch.empty(0)


#: fractional vote totals are rounded to this many decimals: sums of the same shares added in
#: another order then compare (and print) equal
VOTE_DECIMALS = 9


def block_vote_shares(scores: torch.Tensor) -> torch.Tensor:
    """Each example's vote over blocks, ``(N, L)`` float64 rows summing to 1: its lowest-scoring
    block gets the vote; ``m`` blocks tied at the minimum get ``1/m`` each (no index bias)."""
    lowest = scores == scores.amin(dim=-1, keepdim=True)
    return lowest.double() / lowest.sum(dim=-1, keepdim=True)


def head_vote_shares(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Each example's ``k`` votes over ``(b, h)`` pairs, ``(N, L*H)`` float64 rows summing to ``k``:
    one to every pair scoring below the k-th lowest score, and the votes left shared equally by
    the pairs tied at that score."""
    flat = scores.reshape(scores.shape[0], -1)
    kth = flat.sort(dim=-1).values[:, k - 1 : k]  # (N, 1) the k-th lowest score
    below, at = flat < kth, flat == kth
    left = k - below.sum(dim=-1, keepdim=True)  # votes left for the tied pairs (>= 1)
    return below.double() + at.double() * left / at.sum(dim=-1, keepdim=True)


def count_tied(shares: torch.Tensor) -> int:
    """Examples whose vote was split between tied components (a fractional share)."""
    fractional = (shares > 0) & (shares < 1)
    return int(fractional.any(dim=-1).sum())


def rank_components(histogram: torch.Tensor, mean_scores: torch.Tensor, tie_seed: int = 0) -> list[int]:
    """Component indices, most voted first; equal votes go to the lower mean score (the more
    plastic component), and what is still tied to a draw from ``tie_seed`` (no index bias)."""
    votes = histogram.double().numpy().round(VOTE_DECIMALS)
    draw = np.random.default_rng(tie_seed).permutation(len(votes))
    return [int(i) for i in np.lexsort((draw, mean_scores.double().numpy(), -votes))]


def vote_blocks(
    scores_per_example: torch.Tensor | Sequence[torch.Tensor], tie_seed: int = 0
) -> tuple[int | None, list[float]]:
    """Each example votes for its lowest-scoring block (shared among ties); returns the most voted
    block and the vote histogram ``(L,)``. No examples -> ``(None, [])``."""
    scores = _stack(scores_per_example)  # (N, L)
    if scores.numel() == 0:
        return None, []
    hist = block_vote_shares(scores).sum(dim=0).round(decimals=VOTE_DECIMALS)
    return rank_components(hist, scores.double().mean(dim=0), tie_seed)[0], hist.tolist()


def vote_heads(
    scores_per_example: torch.Tensor | Sequence[torch.Tensor], k: int = 12, tie_seed: int = 0
) -> tuple[list[tuple[int, int]], list[list[float]]]:
    """Each example votes for its ``k`` lowest (block, head) pairs (shared among ties at the k-th
    place); the ``k`` most voted pairs are chosen. Returns (chosen pairs, most voted first;
    histogram ``(L, H)`` as nested lists)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = _stack(scores_per_example)  # (N, L, H)
    if scores.numel() == 0:
        return [], []
    N, L, H = scores.shape
    k = min(k, L * H)
    hist = head_vote_shares(scores, k).sum(dim=0).round(decimals=VOTE_DECIMALS)  # (L*H,)
    ranked = rank_components(hist, scores.double().mean(dim=0).reshape(-1), tie_seed)[:k]
    return [(i // H, i % H) for i in ranked], hist.reshape(L, H).tolist()


# --------------------------------------------------------------------------------------------
# The whole step on two models
# --------------------------------------------------------------------------------------------
@dataclass
class CCIResult:
    """What CCI found: the chosen component(s), the vote histogram and the mean scores.

    ``chosen`` is ``[b]`` at block level and ``[(b, h), ...]`` at head level (empty when no example
    could vote). ``votes``: ``(L,)`` or ``(L, H)`` histogram; ``scores_mean``: mean score over the
    used examples, same shape (for heatmaps; empty when none was used). ``n_skipped`` counts every
    example that did not vote, the ``n_without_rationale`` left out for having no rationale included.
    """

    level: str
    chosen: list[Any]
    votes: list[Any]
    n_used: int
    n_skipped: int
    scores_mean: list[Any]
    beta: float = 20.0
    row_filter: str = "all"
    top_k: int | None = None
    n_tied: int = 0
    n_without_rationale: int = 0
    percentile_over: str = "full cropped row (D entries, zeros included)"
    ties: str = "shared vote within an example; equal votes -> lower mean score, then a seeded draw"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> list[int]:
        return [int(b) for b in self.chosen] if self.level == "block" else []

    @property
    def heads(self) -> list[tuple[int, int]]:
        return [(int(b), int(h)) for b, h in self.chosen] if self.level == "head" else []

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["chosen"] = [list(c) if isinstance(c, tuple) else c for c in self.chosen]
        return data


def _eval_models(*models: nn.Module) -> list[bool]:
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    return modes


def _crop(att: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows and columns ``idx`` of ``att`` (L, H, T, T). The document is one contiguous span
    (:func:`rational_lamol.cci_inputs.cci_item`): a slice, a view, where ``index_select`` on two
    axes copies twice (seconds per example at 1,024 tokens); any other set of positions is gathered."""
    lo, n = int(idx[0]), idx.numel()
    if int(idx[-1]) - lo + 1 == n:  # idx is sorted and distinct: contiguous iff it spans n
        return att[:, :, lo : lo + n, lo : lo + n]
    return att.index_select(2, idx).index_select(3, idx)


def _crop_blocks(blocks: Sequence[torch.Tensor], i: int, idx: torch.Tensor) -> list[torch.Tensor]:
    """Example ``i``'s document rows and columns of every block's ``(B, H, T, T)`` attention: one
    ``(H, D, D)`` view per block. Nothing is copied (stacking the batch's ``(B, L, H, T, T)`` took a
    second per example at 1,024 tokens and doubled the forward's memory)."""
    return [_crop(block[i : i + 1], idx)[0] for block in blocks]


def identify_critical_components(
    old_model: nn.Module,
    new_model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    level: Level = "block",
    top_k: int = 12,
    beta: float = 20.0,
    row_filter: RowFilter = "all",
    tie_seed: int = 0,
    n_without_rationale: int = 0,
) -> CCIResult:
    """Run CCI: compare ``old_model`` (M_t) and ``new_model`` (the probe) on rationale-annotated batches.

    Each batch maps ``input_ids`` (B, T), ``attention_mask`` (B, T), ``doc_mask`` (B, T) bool
    (document token positions), ``rationale_mask`` (B, T) bool (rationale tokens) and optionally
    ``index`` (B,), the examples' positions when batches were formed out of order
    (:func:`make_cci_batches` sorts by length): scores are averaged in that order. Examples whose
    rationale has no token at a kept document position do not vote; they are counted in
    ``n_skipped``, with the ``n_without_rationale`` examples the caller left out for having no
    rationale at all (:func:`rational_lamol.cci_inputs.cci_items`), so skips are counted here only. Both models run in eval mode under ``no_grad`` on their own device (modes are
    restored afterwards); scoring runs on the old model's device. ``tie_seed`` seeds the draw that
    decides between components with equal votes and equal mean scores.
    """
    from rational_lamol.adapters import adapter_for

    if level not in ("block", "head"):
        raise ValueError(f"level must be 'block' or 'head', got {level!r}")
    check_row_filter(row_filter)
    old_ad, new_ad = adapter_for(old_model), adapter_for(new_model)
    if (old_ad.n_blocks, old_ad.n_heads) != (new_ad.n_blocks, new_ad.n_heads):
        raise ValueError(
            f"old and new models differ in shape: {old_ad.n_blocks}x{old_ad.n_heads} vs "
            f"{new_ad.n_blocks}x{new_ad.n_heads} (blocks x heads)"
        )
    score_fn = block_scores if level == "block" else head_scores
    scored: list[tuple[int, torch.Tensor]] = []  # (position in the caller's order, scores)
    seen = 0
    n_skipped = n_without_rationale
    modes = _eval_models(old_model, new_model)
    try:
        with torch.no_grad():
            for batch in batches:
                missing = {"input_ids", "doc_mask", "rationale_mask"} - set(batch)
                if missing:
                    raise ValueError(f"CCI batch lacks {sorted(missing)}")
                att_old = old_ad.attention_blocks(batch["input_ids"], batch.get("attention_mask"))
                device = att_old[0].device
                att_new = [a.to(device) for a in new_ad.attention_blocks(batch["input_ids"], batch.get("attention_mask"))]
                doc = batch["doc_mask"].to(device).bool()
                rat = batch["rationale_mask"].to(device).bool()
                if "attention_mask" in batch and batch["attention_mask"] is not None:
                    doc = doc & batch["attention_mask"].to(device).bool()
                B = att_old[0].shape[0]
                positions = batch["index"].tolist() if "index" in batch else list(range(seen, seen + B))
                seen += B
                for i in range(B):
                    idx = doc[i].nonzero().squeeze(-1)  # (D,) document positions
                    gt = rat[i].index_select(0, idx)  # (D,)
                    if idx.numel() == 0 or not bool(gt.any()):
                        n_skipped += 1
                        continue
                    a_old, a_new = _crop_blocks(att_old, i, idx), _crop_blocks(att_new, i, idx)  # (L, H, D, D)
                    scored.append((positions[i], score_fn(a_old, a_new, gt, beta, row_filter).cpu()))
    finally:
        for m, mode in zip((old_model, new_model), modes, strict=True):
            m.train(mode)

    scores = [score for _, score in sorted(scored, key=lambda pair: pair[0])]  # the caller's order
    if level == "block":
        block, votes = vote_blocks(scores, tie_seed)
        chosen: list[Any] = [] if block is None else [block]
    else:
        chosen, votes = vote_heads(scores, top_k, tie_seed)
    n_tied = 0
    if scores:
        stacked = torch.stack(scores)
        n_tied = count_tied(
            block_vote_shares(stacked) if level == "block"
            else head_vote_shares(stacked, min(top_k, stacked[0].numel()))
        )
    if not scores:  # nobody voted: an all-zero histogram of the right shape, not an empty list
        L, H = old_ad.n_blocks, old_ad.n_heads
        votes = [0] * L if level == "block" else [[0] * H for _ in range(L)]
    mean = torch.stack(scores).mean(dim=0).tolist() if scores else []
    return CCIResult(
        level=level,
        chosen=chosen,
        votes=votes,
        n_used=len(scores),
        n_skipped=n_skipped,
        scores_mean=mean,
        n_tied=n_tied,
        n_without_rationale=n_without_rationale,
        beta=float(beta),
        row_filter=row_filter,
        top_k=top_k if level == "head" else None,
    )


def make_cci_batches(
    examples: Sequence[Mapping[str, Sequence[int]]], *, batch_size: int = 8, pad_token_id: int = 0,
    by_length: bool = True,
) -> Iterator[dict[str, torch.Tensor]]:
    """Right-pad per-example ``input_ids``, ``doc_mask``, ``rationale_mask`` lists into CCI batches.

    Right padding keeps every real token's position id unchanged in causal models (GPT-2 included).
    ``by_length``: examples of similar length are batched together (a stable sort by length), so
    the forward pads little; each batch's ``index`` holds its examples' positions in ``examples``,
    by which :func:`identify_critical_components` restores their order.
    """
    order = sorted(range(len(examples)), key=lambda k: len(examples[k]["input_ids"])) if by_length \
        else list(range(len(examples)))
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        chunk = [examples[k] for k in positions]
        T = max(len(ex["input_ids"]) for ex in chunk)
        ids = torch.full((len(chunk), T), pad_token_id, dtype=torch.long)
        att = torch.zeros((len(chunk), T), dtype=torch.long)
        doc = torch.zeros((len(chunk), T), dtype=torch.bool)
        rat = torch.zeros((len(chunk), T), dtype=torch.bool)
        for i, ex in enumerate(chunk):
            n = len(ex["input_ids"])
            if len(ex["doc_mask"]) != n or len(ex["rationale_mask"]) != n:
                raise ValueError(
                    f"example {positions[i]}: input_ids, doc_mask and rationale_mask differ in length"
                )
            ids[i, :n] = torch.as_tensor(ex["input_ids"], dtype=torch.long)
            att[i, :n] = 1
            doc[i, :n] = torch.as_tensor(ex["doc_mask"], dtype=torch.bool)
            rat[i, :n] = torch.as_tensor(ex["rationale_mask"], dtype=torch.bool) & doc[i, :n]
        yield {"input_ids": ids, "attention_mask": att, "doc_mask": doc, "rationale_mask": rat,
               "index": torch.tensor(positions, dtype=torch.long)}
