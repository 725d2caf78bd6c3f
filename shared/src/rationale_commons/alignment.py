"""Word ↔ model-token alignment through character offsets.

Rationales live on a document's whitespace words (ERASER's token space); models
see subword tokens. A fast tokenizer run with ``return_offsets_mapping=True`` on
``" ".join(words)`` gives each token's ``(start, end)`` character span; the
functions here relate those spans to the words' spans from
:func:`word_char_offsets`. They are pure functions over lists (tensors and
arrays with ``.tolist()`` are accepted too) and need no tokenizer.

The rule everywhere: a token and a word are aligned when they share at least
one character. Whitespace belongs to no word, so a GPT-2 byte-level token
``" great"`` whose span includes its leading space (``trim_offsets=False``)
aligns with ``"great"`` only. Tokens with an empty span (``start == end``:
special tokens, padding) align with nothing.

Word offsets must be sorted and non-overlapping (as :func:`word_char_offsets`
makes them). Token offsets are usually sorted too; then alignment is one linear
pass (two pointers), which matters for BoolQ's 100k-word documents. Unsorted
token offsets (e.g. query and document tokenized as a pair, each from 0) still
work: the pointer is re-placed by binary search where a token starts before its
predecessor.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any, Literal

Offsets = Sequence[tuple[int, int]] | Sequence[Sequence[int]]

__all__ = [
    "word_char_offsets",
    "token_word_ranges",
    "word_mask_to_token_mask",
    "token_to_word_index",
    "token_scores_to_word_scores",
    "token_mask_to_word_mask",
]


def word_char_offsets(words: Sequence[str], start: int = 0) -> list[tuple[int, int]]:
    """Character span of each word in ``" ".join(words)``, shifted by ``start``.

    Use ``start`` when the document follows other text in the tokenized string,
    e.g. ``start=len(prefix)`` for ``prefix + " ".join(words)``.
    """
    offsets = []
    pos = start
    for word in words:
        end = pos + len(word)
        offsets.append((pos, end))
        pos = end + 1
    return offsets


def _pairs(offsets: Any) -> list[tuple[int, int]] | Sequence[Any]:
    """Accept lists of pairs, and tensors/arrays of shape (n, 2)."""
    return offsets.tolist() if hasattr(offsets, "tolist") else offsets


def token_word_ranges(word_offsets: Offsets, token_offsets: Offsets) -> list[tuple[int, int]]:
    """For each token, the half-open range ``[lo, hi)`` of word indices it overlaps.

    ``lo == hi`` when the token overlaps no word (special tokens, whitespace,
    text outside the document). Linear in words + tokens for sorted tokens.
    """
    words = _pairs(word_offsets)
    tokens = _pairs(token_offsets)
    n = len(words)
    word_ends: list[int] | None = None
    ranges: list[tuple[int, int]] = []
    w = 0  # first word that may still overlap the current or a later token
    prev_start = -1
    for t_start, t_end in tokens:
        if t_start >= t_end:
            ranges.append((w, w))
            continue
        if t_start < prev_start:  # out of order: re-place the pointer
            if word_ends is None:
                word_ends = [end for _, end in words]
            w = bisect_right(word_ends, t_start)
        prev_start = t_start
        while w < n and words[w][1] <= t_start:
            w += 1
        hi = w
        while hi < n and words[hi][0] < t_end:
            hi += 1
        ranges.append((w, hi))
    return ranges


def word_mask_to_token_mask(
    word_mask: Sequence[int], word_offsets: Offsets, token_offsets: Offsets
) -> list[int]:
    """1 for each token sharing a character with a selected word, else 0."""
    word_mask = _pairs(word_mask)
    words = _pairs(word_offsets)
    if len(word_mask) != len(words):
        raise ValueError(f"word_mask has {len(word_mask)} entries but there are {len(words)} words")
    out = []
    for lo, hi in token_word_ranges(words, token_offsets):
        out.append(int(any(word_mask[j] and words[j][0] < words[j][1] for j in range(lo, hi))))
    return out


def token_to_word_index(word_offsets: Offsets, token_offsets: Offsets) -> list[int]:
    """Index of the (first) word each token overlaps, or -1 for none."""
    words = _pairs(word_offsets)
    out = []
    for lo, hi in token_word_ranges(words, token_offsets):
        out.append(next((j for j in range(lo, hi) if words[j][0] < words[j][1]), -1))
    return out


_REDUCERS = {
    "max": max,
    "sum": sum,
    "mean": lambda values: sum(values) / len(values),
    "first": lambda values: values[0],
}


def token_scores_to_word_scores(
    token_scores: Sequence[float],
    word_offsets: Offsets,
    token_offsets: Offsets,
    reduce: Literal["max", "mean", "sum", "first"] = "max",
) -> list[float]:
    """Per-word score: ``reduce`` over the scores of the tokens overlapping the word.

    Words no token covers (e.g. cut off by truncation) score 0.0.
    """
    if reduce not in _REDUCERS:
        raise ValueError(f"reduce must be one of {', '.join(_REDUCERS)}, got {reduce!r}")
    token_scores = _pairs(token_scores)
    words = _pairs(word_offsets)
    ranges = token_word_ranges(words, token_offsets)
    if len(token_scores) != len(ranges):
        raise ValueError(f"{len(token_scores)} token scores for {len(ranges)} tokens")
    per_word: list[list[float]] = [[] for _ in words]
    for score, (lo, hi) in zip(token_scores, ranges, strict=True):
        for j in range(lo, hi):
            if words[j][0] < words[j][1]:
                per_word[j].append(float(score))
    reducer = _REDUCERS[reduce]
    return [float(reducer(values)) if values else 0.0 for values in per_word]


def token_mask_to_word_mask(
    token_mask: Sequence[int], word_offsets: Offsets, token_offsets: Offsets
) -> list[int]:
    """1 for each word that shares a character with a selected token."""
    token_mask = _pairs(token_mask)
    words = _pairs(word_offsets)
    ranges = token_word_ranges(words, token_offsets)
    if len(token_mask) != len(ranges):
        raise ValueError(f"token_mask has {len(token_mask)} entries for {len(ranges)} tokens")
    out = [0] * len(words)
    for selected, (lo, hi) in zip(token_mask, ranges, strict=True):
        if selected:
            for j in range(lo, hi):
                if words[j][0] < words[j][1]:
                    out[j] = 1
    return out
