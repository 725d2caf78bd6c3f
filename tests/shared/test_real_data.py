"""The real data in ../shared/data loads with exact counts (skipped when absent)."""

from __future__ import annotations

import time

import pytest

from rationale_commons.alignment import word_char_offsets, word_mask_to_token_mask
from rationale_commons.eraser_io import examples_to_annotations
from rationale_commons.loaders import ColumnMapping, carve_validation, load_data, load_documents
from rationale_commons.records import Splits
from rationale_commons.spans import mask_to_spans

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

_LOADED: dict[str, tuple[Splits, float]] = {}


def load_timed(folder) -> tuple[Splits, float]:
    """Load once per test session (BoolQ holds 10^7 words); remember the seconds it took."""
    if str(folder) not in _LOADED:
        start = time.perf_counter()
        splits = load_data(folder)
        _LOADED[str(folder)] = splits, time.perf_counter() - start
    return _LOADED[str(folder)]


@pytest.mark.parametrize(
    ("task", "counts", "labels", "pair"),
    [
        ("movies", (1600, 200, 199), ["NEG", "POS"], False),
        ("scifact", (405, 100, 188), ["REFUTES", "SUPPORTS"], True),
        ("boolq", (2807, 745, 746), ["False", "True"], True),
    ],
)
def test_eraser_tasks(shared_data, task, counts, labels, pair):
    splits, seconds = load_timed(shared_data / "eraser" / task)
    print(f"load {task}: {seconds:.2f} s")
    assert splits.name == task
    assert (len(splits.train), len(splits.val), len(splits.test)) == counts
    assert splits.labels() == labels
    for _, examples in splits.items():
        for example in examples:
            assert example.rationale is not None and len(example.rationale) == len(example.words)
    if pair:  # a real pair task: a different query per example
        assert len({ex.query for ex in splits.train}) == len(splits.train)
    if task == "movies":  # one train annotation has no evidence; every other has some
        assert [ex.id for ex in splits.train if not any(ex.rationale)] == ["posR_161.txt"]
        assert all(any(ex.rationale) for ex in splits.val + splits.test)
    if task == "boolq":
        assert seconds < 20  # ~2.5 s alone on 2 cores; generous for a busy machine
        assert max(len(ex.words) for _, exs in splits.items() for ex in exs) > 90_000


def test_movies_evidence_round_trips_through_annotations(shared_data):
    folder = shared_data / "eraser" / "movies"
    splits, _ = load_timed(folder)
    example = splits.val[0]
    (annotation,) = examples_to_annotations([example])
    raw = next(
        line for line in (folder / "val.jsonl").read_text().splitlines() if example.id in line
    )
    assert "".join(ev.text for ev in annotation.all_evidences())  # texts filled from the words
    assert len(mask_to_spans(example.rationale)) == len(annotation.evidences)
    assert raw.count('"start_token"') >= len(annotation.evidences)  # overlapping gold spans merge
    docs = load_documents(folder, [example.docid])
    assert docs[example.docid] == example.words


def test_boolq_longest_document_aligns_in_linear_time(shared_data):
    splits, _ = load_timed(shared_data / "eraser" / "boolq")
    longest = max((ex for _, exs in splits.items() for ex in exs), key=lambda ex: len(ex.words))
    offsets = word_char_offsets(longest.words)
    tokens = [(s, e) for s, e in offsets]  # one token per word: worst case for pointer walks
    start = time.perf_counter()
    assert word_mask_to_token_mask(longest.rationale, offsets, tokens) == longest.rationale
    assert time.perf_counter() - start < 2.0


def test_agnews_headerless_tsv_folder(shared_data):
    folder = shared_data / "plain" / "agnews"
    start = time.perf_counter()
    whole = load_data(folder, val_fraction=0.0)
    print(f"load agnews: {time.perf_counter() - start:.2f} s")
    # train.tsv holds 10001 rows (the data README says 10000)
    assert (len(whole.train), len(whole.val), len(whole.test)) == (10001, 0, 7600)
    assert whole.labels() == ["Business", "Sci/Tech", "Sports", "World"]
    assert not whole.has_query() and all(ex.rationale is None for ex in whole.test)
    assert whole.train[0].id == "train-0" and whole.train[0].words[0] == "p2pnet.net"
    # no val file: by default 10% of train is carved as val
    train, val = carve_validation(whole.train, 0.1, 0)
    assert (len(train), len(val)) == (9001, 1000)
    positional = load_data(folder / "test.tsv", ColumnMapping(text=0, label=1))
    assert positional.test == whole.test
