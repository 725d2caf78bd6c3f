"""Writing ERASER files: annotations from masks, and write_eraser ↔ load_eraser round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationale_commons.eraser_io import examples_to_annotations, write_annotations, write_eraser
from rationale_commons.errors import DataError
from rationale_commons.loaders import load_eraser, read_annotations
from rationale_commons.records import Example, Splits


def ex(i: str, words: str, rationale=None, **kw) -> Example:
    w = words.split()
    return Example(id=i, words=w, label=kw.pop("label", "x"), rationale=rationale, **kw)


def test_examples_to_annotations_spans_and_text():
    (ann,) = examples_to_annotations(
        [ex("e1", "a b c d e", [0, 1, 1, 0, 1], query="q?", docid="doc")]
    )
    assert ann.annotation_id == "e1" and ann.docids == ["doc"] and ann.query == "q?"
    spans = [(g[0].docid, g[0].start_token, g[0].end_token, g[0].text) for g in ann.evidences]
    assert spans == [("doc", 1, 3, "b c"), ("doc", 4, 5, "e")]
    # explicit masks override the examples' rationales; None means no evidence; docid defaults to id
    (a, b) = examples_to_annotations([ex("e1", "a b", [1, 1]), ex("e2", "c", [1])], [[0, 1], None])
    assert [(g[0].docid, g[0].start_token) for g in a.evidences] == [("e1", 1)]
    assert b.evidences == []
    with pytest.raises(DataError, match="mask has 1 entries but the document has 2 words"):
        examples_to_annotations([ex("e1", "a b")], [[1]])
    with pytest.raises(ValueError, match="1 masks for 2 examples"):
        examples_to_annotations([ex("e1", "a"), ex("e2", "b")], [[1]])


def test_several_documents_split_back_with_documents():
    example = ex("e", "a b c d", [0, 1, 1, 0], docid="d1|d2")
    (joined,) = examples_to_annotations([example])
    assert joined.docids == ["d1|d2"]
    (split,) = examples_to_annotations([example], documents={"d1": ["a", "b"], "d2": ["c", "d"]})
    assert split.docids == ["d1", "d2"]
    assert [(g[0].docid, g[0].start_token, g[0].end_token) for g in split.evidences] == [
        ("d1", 1, 2),
        ("d2", 0, 1),
    ]


def test_write_annotations_is_eraser_jsonl(tmp_path):
    path = tmp_path / "out" / "pred.jsonl"
    anns = examples_to_annotations([ex("e1", "a b c", [1, 0, 1])])
    write_annotations(path, anns)
    row = json.loads(path.read_text().splitlines()[0])
    assert set(row) == {
        "annotation_id",
        "classification",
        "docids",
        "evidences",
        "query",
        "query_type",
    }
    assert row["evidences"][0][0] == {
        "docid": "e1",
        "start_token": 0,
        "end_token": 1,
        "start_sentence": -1,
        "end_sentence": -1,
        "text": "a",
    }
    assert read_annotations(path) == anns
    assert not list(path.parent.glob(".*tmp"))  # atomic write leaves no temporary file


def test_write_eraser_round_trip_and_conflicts(tmp_path):
    splits = Splits(
        name="s",
        train=[
            ex("t1", "a b c", [0, 1, 0], docid="d"),
            ex("t2", "a b c", [1, 0, 0], docid="d", query="q"),
        ],
        test=[ex("u1", "z", None)],
    )
    folder = write_eraser(splits, tmp_path / "e")
    assert sorted(p.name for p in (folder / "docs").iterdir()) == ["d", "u1"]
    assert not (folder / "val.jsonl").exists()
    back = load_eraser(folder, name="s")
    assert back.train == splits.train
    assert back.test[0].rationale == [0]  # no rationale → no evidence → all zeros
    conflicting = Splits(train=[ex("t1", "a b", docid="d"), ex("t2", "a c", docid="d")])
    with pytest.raises(DataError, match="give document 'd' different words"):
        write_eraser(conflicting, tmp_path / "c")
    with pytest.raises(DataError, match="unsafe docid"):
        write_eraser(Splits(train=[ex("a/b", "x")]), tmp_path / "u")
    # rewriting with an empty split removes the stale file
    write_eraser(Splits(train=splits.train), folder)
    assert not (folder / "test.jsonl").exists()


word = st.text("abcdefgh", min_size=1, max_size=4)


@st.composite
def example_lists(draw):
    n = draw(st.integers(1, 6))
    examples = []
    for i in range(n):
        words = draw(st.lists(word, min_size=1, max_size=15))
        mask = draw(st.lists(st.integers(0, 1), min_size=len(words), max_size=len(words)))
        query = draw(st.one_of(st.none(), st.just("why?")))
        examples.append(
            Example(
                id=f"id{i}",
                words=words,
                label=draw(st.sampled_from(["A", "B"])),
                query=query,
                rationale=mask,
                docid=f"doc{i}",
            )
        )
    return examples


@settings(
    max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(example_lists(), st.sampled_from(["train", "val", "test"]))
def test_write_then_load_round_trips(tmp_path, examples, split):
    splits = Splits(name="rt", **{split: examples})
    back = load_eraser(write_eraser(splits, tmp_path / "rt"), name="rt")
    assert back == splits
