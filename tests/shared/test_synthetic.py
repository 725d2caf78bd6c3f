"""The synthetic suite: determinism, balance, planted rationales, pair task, pollution."""

from __future__ import annotations

import copy
import math
from collections import Counter

import numpy as np
import pytest

from rationale_commons.errors import DataError
from rationale_commons.records import Example
from rationale_commons.synthetic import (
    FILLER_WORDS,
    PLANTED_WORDS,
    SPURIOUS_TOKEN,
    SUITE_TASKS,
    TASK_LABELS,
    SyntheticTaskSpec,
    _pair_example,
    _rng,
    make_suite,
    make_task,
    spurious_selection_rate,
)


@pytest.mark.parametrize("name", SUITE_TASKS)
def test_same_seed_gives_byte_identical_data(name: str) -> None:
    a = make_task(name, seed=3, polluted=True)
    b = make_task(name, seed=3, polluted=True)
    assert a.model_dump_json() == b.model_dump_json()
    assert a.model_dump_json() != make_task(name, seed=4, polluted=True).model_dump_json()


def test_splits_draw_from_their_own_streams() -> None:
    small = make_task("topic", n_train=10)
    large = make_task("topic", n_train=50)
    assert small.test == large.test and small.val == large.val


def test_suite_order_names_and_answer_strings() -> None:
    suite = make_suite(n_train=12, n_val=6, n_test=6)
    assert list(suite) == list(SUITE_TASKS) == ["sentiment", "topic", "pair"]
    for name, splits in suite.items():
        assert splits.name == name
        assert splits.labels() == sorted(TASK_LABELS[name])
        assert len(splits.train) == 12 and len(splits.val) == 6 and len(splits.test) == 6
    # Each task answers with its own strings, so sequential training interferes.
    answer_sets = [set(labels) for labels in TASK_LABELS.values()]
    assert sum(len(s) for s in answer_sets) == len(set().union(*answer_sets))
    assert list(make_suite(names=("pair", "sentiment"), n_train=2, n_val=0, n_test=0)) == [
        "pair",
        "sentiment",
    ]


def test_queries_only_for_pair() -> None:
    suite = make_suite(n_train=20, n_val=0, n_test=0)
    assert all(ex.query is None for ex in suite["sentiment"].train + suite["topic"].train)
    assert all(ex.query for ex in suite["pair"].train) and suite["pair"].has_query()


@pytest.mark.parametrize("name", SUITE_TASKS)
@pytest.mark.parametrize("n", [30, 31])
def test_labels_are_balanced(name: str, n: int) -> None:
    counts = Counter(ex.label for ex in make_task(name, n_train=n).train)
    assert set(counts) == set(TASK_LABELS[name])
    assert max(counts.values()) - min(counts.values()) <= 1


def test_planted_vocabularies_are_disjoint_and_never_filler() -> None:
    sets = list(PLANTED_WORDS.values())
    for i, a in enumerate(sets):
        for b in sets[i + 1 :]:
            assert not a & b
    every_planted = set().union(*sets)
    assert len(FILLER_WORDS) == len(set(FILLER_WORDS)) >= 200
    assert not every_planted & set(FILLER_WORDS)
    assert SPURIOUS_TOKEN not in every_planted | set(FILLER_WORDS)


@pytest.mark.parametrize("name", ["sentiment", "topic"])
def test_single_input_rationale_is_exactly_the_planted_words(name: str) -> None:
    splits = make_task(name, n_train=200, doc_words=(20, 60))
    from rationale_commons.synthetic import _CLASS_WORDS

    for ex in splits.train + splits.test:
        assert 20 <= len(ex.words) <= 60
        planted = [i for i, w in enumerate(ex.words) if w in PLANTED_WORDS[name]]
        assert ex.rationale == [int(i in planted) for i in range(len(ex.words))]
        assert 1 <= len(planted) <= 3
        # The planted words all belong to the example's own label: the signal is clean.
        assert all(ex.words[i] in _CLASS_WORDS[name][ex.label] for i in planted)
        assert all(w in FILLER_WORDS for i, w in enumerate(ex.words) if i not in planted)


def _pair_oracle(ex: Example) -> str:
    """Read the label off query + document: the answer is determined by both."""
    assert ex.query is not None
    _, _, obj, colour, _ = ex.query.split()
    for i in range(len(ex.words) - 3):
        if ex.words[i : i + 2] == ["the", obj] and ex.words[i + 2] == "is":
            return "yes" if ex.words[i + 3] == colour else "no"
    raise AssertionError("queried object not in the document")


def test_pair_rationale_is_the_queried_statement() -> None:
    splits = make_task("pair", n_train=300)
    for ex in splits.train:
        assert ex.rationale is not None and 20 <= len(ex.words) <= 60
        obj = ex.query.split()[2]  # type: ignore[union-attr]
        start = next(i for i in range(len(ex.words) - 1) if ex.words[i : i + 2] == ["the", obj])
        assert ex.rationale == [int(start <= i < start + 4) for i in range(len(ex.words))]
        assert _pair_oracle(ex) == ex.label
        assert ex.words.count(obj) == 1


def test_pair_document_does_not_depend_on_the_label() -> None:
    # Same random state, opposite labels: the same document and rationale, different queries.
    spec = SyntheticTaskSpec(name="pair")
    for split in range(3):
        rng_yes = _rng(spec, split)
        rng_no = copy.deepcopy(rng_yes)
        for _ in range(50):
            w_yes, r_yes, q_yes = _pair_example(rng_yes, spec, "yes")
            w_no, r_no, q_no = _pair_example(rng_no, spec, "no")
            assert (w_yes, r_yes) == (w_no, r_no) and q_yes != q_no
            rng_no = copy.deepcopy(rng_yes)  # re-synchronise (the "no" branch draws once more)


def test_pair_not_solvable_from_document_alone() -> None:
    # Naive Bayes on document words only, trained on 2000 examples: chance on 2000 held-out.
    splits = make_task("pair", n_train=2000, n_val=0, n_test=2000)
    vocab = sorted({w for ex in splits.train + splits.test for w in ex.words})
    index = {w: i for i, w in enumerate(vocab)}
    counts = {lab: np.ones(len(vocab)) for lab in ("yes", "no")}
    for ex in splits.train:
        for w in ex.words:
            counts[ex.label][index[w]] += 1
    logp = {lab: np.log(c / c.sum()) for lab, c in counts.items()}
    hits = 0
    for ex in splits.test:
        idx = [index[w] for w in ex.words]
        guess = max(("yes", "no"), key=lambda lab: logp[lab][idx].sum())
        hits += guess == ex.label
    accuracy = hits / len(splits.test)
    assert abs(accuracy - 0.5) < 0.05, accuracy
    # With the query the label is determined.
    assert all(_pair_oracle(ex) == ex.label for ex in splits.test)


@pytest.mark.parametrize("statements", [1, 3])
def test_pair_colour_question_answers_with_the_queried_objects_colour(statements: int) -> None:
    splits = make_task("pair", n_train=400, pair_statements=statements, pair_question="colour", polluted=True)
    colours = ("red", "blue", "green", "yellow")
    assert Counter(ex.label for ex in splits.train) == {c: 100 for c in colours}
    for ex in splits.train + splits.test:
        assert ex.query is not None and ex.query.startswith("what colour is the ")
        obj = ex.query.split()[4]
        at = ex.words.index(obj)
        assert ex.words[at - 1 : at + 3] == ["the", obj, "is", ex.label]
        # the rationale is exactly the queried statement
        assert [i for i, r in enumerate(ex.rationale) if r] == list(range(at - 1, at + 3))
    # the match question is unchanged by the new option (same data as before it existed)
    assert make_task("pair", n_train=5).train == make_task("pair", n_train=5, pair_question="match").train


@pytest.mark.parametrize("name", ["sentiment", "topic"])
def test_label_noise_writes_that_share_of_texts_for_another_label(name: str) -> None:
    from rationale_commons.synthetic import _CLASS_WORDS

    words_of = {w: lab for lab, words in _CLASS_WORDS[name].items() for w in words}
    noisy = make_task(name, n_train=2000, label_noise=0.2)
    disagree = [ex for ex in noisy.train if {words_of[w] for w in ex.words if w in words_of} != {ex.label}]
    assert abs(len(disagree) / len(noisy.train) - 0.2) < 0.03
    # the planted words of a noisy example are still its rationale
    assert all(ex.rationale == [int(w in words_of) for w in ex.words] for ex in disagree)
    assert make_task(name, n_train=40, label_noise=0.0) == make_task(name, n_train=40)


@pytest.mark.parametrize("name", ["sentiment", "topic"])
def test_word_noise_flips_each_planted_word_independently(name: str) -> None:
    from rationale_commons.synthetic import _CLASS_WORDS

    words_of = {w: lab for lab, words in _CLASS_WORDS[name].items() for w in words}
    noisy = make_task(name, n_train=2000, planted_per_doc=(2, 2), word_noise=0.25)
    planted = [(words_of[w], ex.label) for ex in noisy.train for w in ex.words if w in words_of]
    assert len(planted) == 2 * len(noisy.train)
    assert abs(sum(lab != label for lab, label in planted) / len(planted) - 0.25) < 0.02
    flips = [sum(words_of[w] != ex.label for w in ex.words if w in words_of) for ex in noisy.train]
    assert abs(flips.count(2) / len(flips) - 0.25**2) < 0.015  # independent per word, not per document
    assert all(ex.rationale == [int(w in words_of) for w in ex.words] for ex in noisy.train)
    assert make_task(name, n_train=40, word_noise=0.0) == make_task(name, n_train=40)


def test_pair_question_must_be_known() -> None:
    with pytest.raises(DataError, match="pair_question"):
        make_task("pair", pair_question="why")


@pytest.mark.parametrize("name", SUITE_TASKS)
def test_pollution_rates_per_env_and_reversed_at_test(name: str) -> None:
    splits = make_task(name, n_train=1200, n_val=600, n_test=1200, polluted=True)
    first = TASK_LABELS[name][0]
    for split in ("train", "val"):
        exs = splits[split]
        assert Counter(ex.env for ex in exs) == {"env0": len(exs) // 2, "env1": len(exs) // 2}
        for env, p_first in (("env0", 0.9), ("env1", 0.7)):
            for label in TASK_LABELS[name]:
                group = [ex for ex in exs if ex.env == env and ex.label == label]
                rate = sum(ex.words[0] == SPURIOUS_TOKEN for ex in group) / len(group)
                expected = p_first if label == first else 1 - p_first
                assert math.isclose(rate, expected, abs_tol=0.02), (split, env, label, rate)
    for label in TASK_LABELS[name]:
        group = [ex for ex in splits.test if ex.label == label]
        rate = sum(ex.words[0] == SPURIOUS_TOKEN for ex in group) / len(group)
        assert math.isclose(rate, 0.1 if label == first else 0.9, abs_tol=0.02)
    assert all(ex.env is None for ex in splits.test)
    for ex in splits.train + splits.val + splits.test:
        assert ex.rationale is not None
        for i, w in enumerate(ex.words):
            if w == SPURIOUS_TOKEN:
                assert i == 0 and ex.rationale[i] == 0
        assert ex.words.count(SPURIOUS_TOKEN) <= 1
        assert sum(ex.rationale) >= 1


def test_unpolluted_has_no_env_and_no_token() -> None:
    for splits in make_suite(n_train=50, n_val=10, n_test=10).values():
        for _, exs in splits.items():
            assert all(ex.env is None and SPURIOUS_TOKEN not in ex.words for ex in exs)


def test_spurious_selection_rate_hand_cases() -> None:
    exs = [
        Example(id="a", words=[SPURIOUS_TOKEN, "x", "y"], label="l"),
        Example(id="b", words=[SPURIOUS_TOKEN, "x"], label="l"),
        Example(id="c", words=["x", "y"], label="l"),  # no token: ignored
    ]
    masks = [[1, 0, 0], [0, 1], [1, 1]]
    assert spurious_selection_rate(masks, exs) == pytest.approx(0.5)  # 1 of the 2 holding it
    assert spurious_selection_rate([np.array([0.9, 0, 0]), [0.2, 1], [0, 0]], exs) == 1 / 2
    assert spurious_selection_rate([[0, 1]], exs[2:]) is None
    with pytest.raises(ValueError):
        spurious_selection_rate([[1, 0]], exs[:1])
    with pytest.raises(ValueError):
        spurious_selection_rate(masks[:2], exs)


def test_bad_arguments_raise_data_error() -> None:
    with pytest.raises(DataError, match="unknown synthetic task"):
        make_task("nope")
    with pytest.raises(DataError):
        make_task("pair", doc_words=(5, 10))
    with pytest.raises(DataError):
        make_task("sentiment", doc_words=(30, 20))
    with pytest.raises(DataError):
        make_suite(names=("topic", "topic"))
    with pytest.raises(ValueError):
        SyntheticTaskSpec(name="topic", unknown_field=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("n_statements", [1, 3])
def test_pair_statements_knob(n_statements: int) -> None:
    splits = make_task("pair", n_train=40, pair_statements=n_statements)
    for ex in splits.train:
        assert ex.words.count("is") == n_statements
        assert sum(ex.rationale or []) == 4 and _pair_oracle(ex) == ex.label


def test_pair_repeats_write_the_queried_statement_again() -> None:
    once = make_task("pair", n_train=40, pair_statements=1, pair_question="colour", doc_words=(24, 48))
    again = make_task("pair", n_train=40, pair_statements=1, pair_question="colour", doc_words=(24, 48),
                      pair_repeats=(1, 1))
    assert again.train == once.train  # the default draws nothing more: the same data as before
    splits = make_task("pair", n_train=200, pair_statements=2, pair_question="colour", doc_words=(24, 48),
                       pair_repeats=(1, 3))
    counts = set()
    for ex in splits.train:
        obj = ex.query.split()[-2]
        copies = [i for i, w in enumerate(ex.words) if w == obj]
        counts.add(len(copies))
        assert all(ex.words[i + 2] == ex.label for i in copies)  # every copy says the label
        assert sum(ex.rationale or []) == 4 * len(copies)  # and every copy is rationale
        assert ex.words.count("is") == 1 + len(copies)  # the other statement, once
    assert counts == {1, 2, 3}
    with pytest.raises(DataError):
        make_task("pair", pair_repeats=(0, 2))
    with pytest.raises(DataError):
        make_task("pair", pair_statements=1, doc_words=(8, 12), pair_repeats=(1, 3))  # 12 words needed


def test_markov_filler_follows_its_chain_and_uniform_is_unchanged() -> None:
    from rationale_commons.synthetic import FILLER_SUCCESSORS, FILLER_WORDS

    uniform = make_task("sentiment", n_train=30, doc_words=(24, 48))
    assert make_task("sentiment", n_train=30, doc_words=(24, 48), filler="uniform").train == uniform.train
    index = {w: i for i, w in enumerate(FILLER_WORDS)}
    for name in ("sentiment", "pair"):
        options = {"pair_statements": 1, "pair_question": "colour"} if name == "pair" else {}
        splits = make_task(name, n_train=30, doc_words=(24, 48), filler="markov", **options)
        for ex in splits.train:
            planted = set(ex.words) - set(FILLER_WORDS)
            assert planted  # the task's own words are still there
            for a, b in zip(ex.words[:-1], ex.words[1:], strict=True):
                if a in index and b in index:  # two filler words in a row: b is one of a's successors
                    assert index[b] in FILLER_SUCCESSORS[index[a]]
        assert splits.train != make_task(name, n_train=30, doc_words=(24, 48), **options).train
