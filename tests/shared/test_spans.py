"""Span ↔ mask conversion: hand cases and hypothesis round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rationale_commons.errors import DataError
from rationale_commons.spans import mask_to_spans, scores_to_mask, spans_to_mask


@pytest.mark.parametrize(
    ("mask", "spans"),
    [
        ([], []),
        ([0, 0], []),
        ([1], [(0, 1)]),
        ([0, 1, 1, 0, 1], [(1, 3), (4, 5)]),
        ([1, 1, 1], [(0, 3)]),
        ([True, False, True], [(0, 1), (2, 3)]),
    ],
)
def test_mask_to_spans_by_hand(mask, spans):
    assert mask_to_spans(mask) == spans


def test_spans_to_mask_unions_overlaps_and_ignores_empty_spans():
    assert spans_to_mask([(1, 3), (2, 4), (5, 5)], 6) == [0, 1, 1, 1, 0, 0]
    assert spans_to_mask([], 3) == [0, 0, 0]
    assert spans_to_mask([(0, 3)], 3) == [1, 1, 1]


@pytest.mark.parametrize("span", [(-1, 2), (2, 5), (3, 2), (4, 4)])
def test_spans_to_mask_rejects_spans_outside_the_document(span):
    with pytest.raises(DataError, match="outside"):
        spans_to_mask([span], 3)
    with pytest.raises(ValueError):  # DataError is a ValueError
        spans_to_mask([span], 3)


def test_scores_to_mask_takes_top_fraction_ties_to_earlier():
    assert scores_to_mask([0.1, 0.9, 0.5, 0.9], 0.5) == [0, 1, 0, 1]
    assert scores_to_mask([1.0, 1.0, 1.0, 1.0], 0.25) == [1, 0, 0, 0]
    assert scores_to_mask([0.3, 0.2], 0.0) == [0, 0]
    with pytest.raises(ValueError):
        scores_to_mask([0.3], 1.5)


masks = st.lists(st.integers(0, 1), max_size=60)


@given(masks)
def test_mask_round_trip(mask):
    spans = mask_to_spans(mask)
    assert spans_to_mask(spans, len(mask)) == mask
    # spans are maximal: sorted, non-empty, separated by at least one 0
    assert all(s < e for s, e in spans)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False))


@st.composite
def spans_and_length(draw):
    length = draw(st.integers(0, 50))
    pairs = draw(st.lists(st.tuples(st.integers(0, length), st.integers(0, length)), max_size=8))
    return [(min(a, b), max(a, b)) for a, b in pairs], length


@given(spans_and_length())
def test_spans_round_trip_is_canonical_union(case):
    spans, length = case
    mask = spans_to_mask(spans, length)
    covered = {i for s, e in spans for i in range(s, e)}
    assert mask == [int(i in covered) for i in range(length)]
    assert spans_to_mask(mask_to_spans(mask), length) == mask


def test_evidence_mask_is_the_union_over_the_layout_and_names_the_annotation():
    from rationale_commons.records import Annotation, Evidence
    from rationale_commons.spans import evidence_mask

    def annotation(*evidences: tuple[str, int, int]) -> Annotation:
        # model_construct: spans pydantic would refuse reach the function as they are
        evs = [[Evidence.model_construct(docid=d, start_token=s, end_token=e)] for d, s, e in evidences]
        return Annotation.model_construct(annotation_id="a1", evidences=evs)

    layout = [("d1", 0, 3), ("d2", 3, 2)]
    assert evidence_mask(annotation(("d1", 0, 2), ("d1", 1, 3), ("d2", 1, 2), ("d2", 0, 0)), layout) == [1, 1, 1, 0, 1]
    assert evidence_mask(annotation(), layout) == [0] * 5
    for bad, problem in [
        (("d1", 2, 1), "evidence span (2, 1) is reversed"),
        (("d1", -1, 1), "evidence span (-1, 1) is outside document 'd1' (3 words)"),
        (("d2", 1, 3), "evidence span (1, 3) is outside document 'd2' (2 words)"),
        (("d9", 0, 1), "evidence docid 'd9' is not among the annotation's documents (d1, d2)"),
    ]:
        with pytest.raises(DataError) as err:
            evidence_mask(annotation(bad), layout, path="x.jsonl", line=4)
        assert str(err.value) == f"x.jsonl:4: evidences: annotation 'a1': {problem}"
