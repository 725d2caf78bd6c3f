"""Pseudo-sample parsing: exactly one `__ans__`, a question before and an answer after it."""

from __future__ import annotations

from rational_lamol.pseudo import parse_pseudo_sample
from rational_lamol.tasks import SpecialIds

IDS = SpecialIds(ans=3, eos=1, pad=0, gen={"__shared__": 2, "a": 4}, shared_gen=True)


def test_accepts_well_formed():
    p = parse_pseudo_sample([10, 11, 3, 12, 1], IDS)
    assert p is not None and p.question_ids == [10, 11] and p.answer_ids == [12]
    # what follows EOS is ignored; a sample cut by the window (no EOS) is accepted
    assert parse_pseudo_sample([10, 3, 12, 1, 3, 3], IDS) is not None
    assert parse_pseudo_sample([10, 3, 12, 13], IDS).answer_ids == [12, 13]


def test_rejects_malformed():
    assert parse_pseudo_sample([10, 11, 12, 1], IDS) is None  # no __ans__
    assert parse_pseudo_sample([10, 3, 11, 3, 12, 1], IDS) is None  # two __ans__
    assert parse_pseudo_sample([3, 12, 1], IDS) is None  # empty question
    assert parse_pseudo_sample([10, 3, 1], IDS) is None  # empty answer
    assert parse_pseudo_sample([10, 2, 3, 12, 1], IDS) is None  # a generation token inside
    assert parse_pseudo_sample([10, 4, 3, 12], IDS) is None  # a per-task generation token inside
    assert parse_pseudo_sample([], IDS) is None
