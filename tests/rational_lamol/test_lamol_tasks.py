"""QA building (docs/algorithms.md §1): the context is truncated from its end, never the question or answer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rational_lamol.answers import normalize_answer
from rational_lamol.tasks import (
    ANS_TOKEN,
    crop_context,
    encode_qa,
    evidence_kept,
    pseudo_sample_count,
    special_ids,
)
from rationale_commons.errors import DataError
from rationale_commons.records import Example

VOCAB = ["the", "movie", "was", "great", "awful", "plot", "acting", "good", "bad", "fine"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_words=st.integers(1, 120), max_length=st.integers(40, 120), seed=st.integers(0, 1000))
def test_truncation_never_cuts_question_or_answer(tiny_tokenizer, example_factory, n_words, max_length, seed):
    words = " ".join(VOCAB[(seed + 7 * k) % len(VOCAB)] for k in range(n_words))
    ex = example_factory(words, "positive")
    enc = encode_qa(ex, tiny_tokenizer, max_length, question="What is the sentiment of this review?")
    ans_id = tiny_tokenizer.convert_tokens_to_ids(ANS_TOKEN)
    q_ids = tiny_tokenizer(" What is the sentiment of this review?", add_special_tokens=False)["input_ids"]
    a_ids = tiny_tokenizer(" positive", add_special_tokens=False)["input_ids"]
    assert len(enc.input_ids) + 2 <= max_length  # GEN and EOS still fit
    assert enc.input_ids[enc.answer_start - 1] == ans_id
    assert enc.input_ids[enc.answer_start:] == a_ids  # the whole answer
    assert enc.input_ids[enc.doc_end : enc.answer_start - 1] == q_ids  # the whole question
    full = tiny_tokenizer(words, add_special_tokens=False)["input_ids"]
    assert enc.input_ids[: enc.doc_end] == full[: enc.doc_end]  # a prefix of the context: cut at its end
    assert enc.truncated == (len(full) > enc.doc_end)
    # document token offsets point into " ".join(words)
    assert len(enc.doc_offsets) == enc.doc_end
    for (s, e), tid in zip(enc.doc_offsets, enc.input_ids[: enc.doc_end], strict=True):
        assert tiny_tokenizer.decode([tid]).strip() == words[s:e].strip()


def test_query_overrides_fixed_question(tiny_tokenizer, example_factory):
    ex = example_factory("the plot was good", "yes", query="is the plot good ?")
    enc = encode_qa(ex, tiny_tokenizer, 64, question="ignored question")
    text = tiny_tokenizer.decode(enc.input_ids)
    assert "is the plot good ?" in text and "ignored" not in text


def test_question_and_answer_that_cannot_fit_is_a_clear_error(tiny_tokenizer, example_factory):
    ex = example_factory("the plot", "positive")
    with pytest.raises(DataError, match="max_length"):
        encode_qa(ex, tiny_tokenizer, 8, question="What is the sentiment of this review of the movie?")


def test_special_ids_and_counts(tiny_tokenizer):
    ids = special_ids(tiny_tokenizer, ["a", "b"], shared_gen=False)
    assert len({ids.ans, ids.eos, ids.pad, ids.gen_id("a"), ids.gen_id("b")}) == 5
    shared = special_ids(tiny_tokenizer, ["a", "b"], shared_gen=True)
    assert shared.gen_id("a") == shared.gen_id("b")
    assert pseudo_sample_count(0.2, 100, 2) == [10, 10]
    assert pseudo_sample_count(0.2, 101, 2) == [11, 10]  # ceil(20.2) = 21
    assert pseudo_sample_count(0.2, 100, 0) == []
    assert normalize_answer("  Positive. ") == "positive"


def _annotated(n_words: int, evidence: range) -> Example:
    return Example(id="e", words=[f"w{k}" for k in range(n_words)], label="yes",
                   rationale=[int(k in evidence) for k in range(n_words)])


@settings(max_examples=60, deadline=None)
@given(n_words=st.integers(1, 300), window=st.integers(8, 120), first=st.integers(0, 299), length=st.integers(1, 20))
def test_evidence_window_keeps_the_evidence_start(n_words, window, first, length):
    first = min(first, n_words - 1)
    ex = _annotated(n_words, range(first, first + length))
    cut = crop_context(ex, window, "evidence")
    assert len(cut.words) == min(n_words, window)
    assert cut.rationale == [int(w in {f"w{k}" for k in range(first, first + length)}) for w in cut.words]
    assert f"w{first}" in cut.words  # the first evidence word always survives
    start = int(cut.words[0][1:])
    assert cut.words == ex.words[start : start + len(cut.words)]  # one contiguous window
    if n_words > window and first >= window // 4 and first - window // 4 + window <= n_words:
        assert start == first - window // 4  # a quarter of the window of context before the evidence


def test_start_window_and_unannotated_documents_keep_the_beginning():
    ex = _annotated(50, range(40, 45))
    assert crop_context(ex, 10, "start").words == ex.words[:10]
    plain = ex.model_copy(update={"rationale": None})
    assert crop_context(plain, 10, "evidence").words == ex.words[:10]
    assert crop_context(ex, 60, "evidence") is ex  # short enough: untouched
    assert evidence_kept([ex], [crop_context(ex, 10, "start")]) == 0.0
    assert evidence_kept([ex], [crop_context(ex, 10, "evidence")]) == 1.0


def test_context_words_applies_to_every_split(caplog):
    from rational_lamol.config import TaskConfig
    from rational_lamol.tasks import load_task

    task = TaskConfig(name="pair", data="synthetic:pair", max_train=12, max_val=4, max_test=4,
                      context_words=8, context_anchor="evidence", synthetic={"doc_words": [20, 30]})
    with caplog.at_level("INFO", logger="rational_lamol"):
        data = load_task(task)
    assert "pair: 20 of 20 documents cut to 8 words (window from the evidence)" in caplog.text
    for _, exs in data.splits.items():
        assert all(len(ex.words) == 8 for ex in exs)
        assert all(ex.rationale is None or len(ex.rationale) == 8 for ex in exs)
