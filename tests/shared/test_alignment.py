"""Word ↔ token alignment: hand cases, hypothesis round trips, a real GPT-2 tokenizer, speed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rationale_commons.alignment import (
    token_mask_to_word_mask,
    token_scores_to_word_scores,
    token_to_word_index,
    token_word_ranges,
    word_char_offsets,
    word_mask_to_token_mask,
)

# ../shared/models beside the repository (as tests/conftest.py finds ../shared/data)
_SHARED_DATA = os.environ.get(
    "RATIONALE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"
)
GPT2_DIR = Path(_SHARED_DATA).parent / "models" / "gpt2-tokenizer"

WORDS = ["a", "really", "great", "movie"]
# "a really great movie": a=(0,1) really=(2,8) great=(9,14) movie=(15,20)
# GPT-2-style tokens whose spans include the leading space, plus special tokens (0, 0):
TOKENS = [(0, 0), (0, 1), (1, 8), (8, 14), (14, 17), (17, 20), (0, 0)]
#         <bos>    a      " really" " great" " mo"    "vie"   <eos>


def test_word_char_offsets():
    assert word_char_offsets(WORDS) == [(0, 1), (2, 8), (9, 14), (15, 20)]
    assert word_char_offsets(["ab", "c"], start=10) == [(10, 12), (13, 14)]
    assert word_char_offsets([]) == []


def test_leading_space_token_maps_to_its_word_only():
    offsets = word_char_offsets(WORDS)
    # only "great" selected: " great" (8, 14) touches char 8 (a space) but no char of "really"
    assert word_mask_to_token_mask([0, 0, 1, 0], offsets, TOKENS) == [0, 0, 0, 1, 0, 0, 0]
    assert word_mask_to_token_mask([0, 0, 0, 1], offsets, TOKENS) == [0, 0, 0, 0, 1, 1, 0]
    assert token_to_word_index(offsets, TOKENS) == [-1, 0, 1, 2, 3, 3, -1]


def test_token_to_word_masks_and_scores():
    offsets = word_char_offsets(WORDS)
    assert token_mask_to_word_mask([1, 0, 0, 0, 0, 1, 1], offsets, TOKENS) == [0, 0, 0, 1]
    scores = [9.0, 0.1, 0.2, 0.3, 0.4, 0.8, 9.0]
    assert token_scores_to_word_scores(scores, offsets, TOKENS) == pytest.approx(
        [0.1, 0.2, 0.3, 0.8]
    )
    assert token_scores_to_word_scores(scores, offsets, TOKENS, reduce="mean") == pytest.approx(
        [0.1, 0.2, 0.3, 0.6]
    )
    assert token_scores_to_word_scores(scores, offsets, TOKENS, reduce="sum") == pytest.approx(
        [0.1, 0.2, 0.3, 1.2]
    )
    assert token_scores_to_word_scores(scores, offsets, TOKENS, reduce="first") == pytest.approx(
        [0.1, 0.2, 0.3, 0.4]
    )
    with pytest.raises(ValueError, match="reduce"):
        token_scores_to_word_scores(scores, offsets, TOKENS, reduce="median")


def test_truncated_words_score_zero_and_length_checks():
    offsets = word_char_offsets(WORDS)
    assert token_scores_to_word_scores([0.5, 0.7], offsets, [(0, 1), (1, 8)]) == [
        0.5,
        0.7,
        0.0,
        0.0,
    ]
    with pytest.raises(ValueError):
        word_mask_to_token_mask([1, 0], offsets, TOKENS)
    with pytest.raises(ValueError):
        token_mask_to_word_mask([1], offsets, TOKENS)


def test_token_spanning_two_words_and_whitespace_only_token():
    offsets = word_char_offsets(["ab", "cd"])  # (0,2) (3,5)
    tokens = [(1, 4), (2, 3)]  # "b c" spans both words; " " touches none
    assert token_word_ranges(offsets, tokens) == [(0, 2), (1, 1)]
    assert word_mask_to_token_mask([0, 1], offsets, tokens) == [1, 0]
    assert token_to_word_index(offsets, tokens) == [0, -1]


def test_prefix_and_out_of_order_tokens():
    # "question ? a b" with the document starting at char 11; tokens of the
    # document come first, then the query's (e.g. from a pair encoding)
    words = ["a", "b"]
    offsets = word_char_offsets(words, start=11)  # (11,12) (13,14)
    tokens = [(11, 12), (12, 14), (0, 8), (9, 10)]
    assert word_mask_to_token_mask([0, 1], offsets, tokens) == [0, 1, 0, 0]
    assert token_to_word_index(offsets, tokens) == [0, 1, -1, -1]


def test_accepts_arrays():
    np = pytest.importorskip("numpy")
    offsets = word_char_offsets(WORDS)
    assert word_mask_to_token_mask(np.array([0, 0, 1, 0]), np.array(offsets), np.array(TOKENS)) == [
        0,
        0,
        0,
        1,
        0,
        0,
        0,
    ]


@st.composite
def tokenized_words(draw):
    """Random words, each cut into 1-3 pieces; a piece after a space may carry that space (GPT-2 style)."""
    words = draw(st.lists(st.text("abcxyzé語", min_size=1, max_size=6), max_size=25))
    offsets = word_char_offsets(words)
    tokens, owner = [(0, 0)], [-1]
    for index, (start, end) in enumerate(offsets):
        cuts = (
            sorted(draw(st.sets(st.integers(start + 1, end - 1), max_size=2)))
            if end - start > 1
            else []
        )
        bounds = [start, *cuts, end]
        for j, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
            if j == 0 and index > 0 and draw(st.booleans()):
                lo -= 1  # include the separating space
            tokens.append((lo, hi))
            owner.append(index)
    tokens.append((0, 0))
    owner.append(-1)
    mask = draw(st.lists(st.integers(0, 1), min_size=len(words), max_size=len(words)))
    return words, offsets, tokens, owner, mask


@given(tokenized_words())
def test_alignment_round_trips(case):
    words, offsets, tokens, owner, mask = case
    assert token_to_word_index(offsets, tokens) == owner
    token_mask = word_mask_to_token_mask(mask, offsets, tokens)
    assert token_mask == [int(o >= 0 and mask[o] == 1) for o in owner]
    assert token_mask_to_word_mask(token_mask, offsets, tokens) == mask
    scores = token_scores_to_word_scores([float(m) for m in token_mask], offsets, tokens)
    assert scores == [float(m) for m in mask]
    # the same answer when the tokens come in reverse order (pointer re-placed by bisection)
    assert token_to_word_index(offsets, tokens[::-1]) == owner[::-1]


def test_linear_time_on_a_100k_word_document():
    words = ["w"] * 100_000
    offsets = word_char_offsets(words)
    tokens = [(max(s - 1, 0), e) for s, e in offsets]
    start = time.perf_counter()
    out = word_mask_to_token_mask([1, 0] * 50_000, offsets, tokens)
    assert time.perf_counter() - start < 2.0
    assert out[:4] == [1, 0, 1, 0]


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    if not (GPT2_DIR / "vocab.json").is_file():
        pytest.skip(f"GPT-2 tokenizer files not found at {GPT2_DIR}")
    transformers = pytest.importorskip("transformers")
    return transformers.GPT2TokenizerFast.from_pretrained(str(GPT2_DIR))


def test_real_gpt2_tokenizer(gpt2_tokenizer):
    words = ["the", "movie", "was", "unbelievably", "great", "!", "Ĳ", "co-operation"]
    mask = [0, 0, 0, 1, 1, 0, 1, 0]
    query = "is it good ?"
    prefix = query + " \n "
    text = prefix + " ".join(words)
    enc = gpt2_tokenizer(text, return_offsets_mapping=True)
    offsets = word_char_offsets(words, start=len(prefix))
    token_offsets = enc["offset_mapping"]
    token_mask = word_mask_to_token_mask(mask, offsets, token_offsets)
    pieces = gpt2_tokenizer.convert_ids_to_tokens(enc["input_ids"])
    selected = "".join(p for p, m in zip(pieces, token_mask, strict=True) if m)
    assert selected.replace("Ġ", " ").strip().startswith("unbelievably great")
    # the token " great" includes its leading space but maps to "great" only
    great = next(i for i, p in enumerate(pieces) if p == "Ġgreat")
    assert token_offsets[great][0] == offsets[4][0] - 1
    assert token_to_word_index(offsets, token_offsets)[great] == 4
    assert token_mask_to_word_mask(token_mask, offsets, token_offsets) == mask
    # no query token is aligned with a document word
    n_query = sum(1 for s, e in token_offsets if e <= len(query))
    assert token_to_word_index(offsets, token_offsets)[:n_query] == [-1] * n_query
