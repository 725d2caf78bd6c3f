"""QA building (docs/algorithms.md §1): the context is truncated from its end, never the question or answer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rational_lamol.answers import normalize_answer
from rational_lamol.tasks import (
    ANS_TOKEN,
    encode_qa,
    pseudo_sample_count,
    special_ids,
)
from rationale_commons.errors import DataError

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
