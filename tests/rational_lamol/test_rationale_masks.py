"""One way from ERASER annotations to word masks (:func:`rationale_commons.spans.evidence_mask`):
the ERASER loader, a task's rationale file and InvRat's reused rationales give the same masks for
the same annotations, and the same one-line error for a bad one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rational_lamol.config import TaskConfig
from rational_lamol.rationale_sources import invrat_rationales
from rational_lamol.tasks import load_task
from rationale_commons.errors import DataError
from rationale_commons.loaders import load_eraser

DOCS = {"d1": "a good film all round", "d2": "a dull plot", "d3": "fine acting and a fine score"}


def ann(aid: str, docid: str, label: str, *spans: tuple[int, int]) -> dict:
    return {"annotation_id": aid, "classification": label, "docids": [docid],
            "evidences": [[{"docid": docid, "start_token": s, "end_token": e}] for s, e in spans]}


# overlapping spans (a union), no evidence (all zeros), an empty span (selects nothing)
SPLITS = {
    "train": [ann("t1", "d1", "POS", (0, 2), (1, 3)), ann("t2", "d2", "NEG")],
    "val": [ann("v1", "d3", "POS", (4, 6), (2, 2))],
    "test": [ann("s1", "d2", "NEG", (2, 3))],
}
EXPECTED = {"t1": [1, 1, 1, 0, 0], "t2": [0, 0, 0], "v1": [0, 0, 0, 0, 1, 1], "s1": [0, 0, 1]}


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def eraser_folder(root: Path, splits: dict[str, list[dict]]) -> Path:
    (root / "docs").mkdir(parents=True)
    for docid, text in DOCS.items():
        (root / "docs" / docid).write_text(text, encoding="utf-8")
    for split, rows in splits.items():
        write_lines(root / f"{split}.jsonl", rows)
    return root


def stale_folder(root: Path, splits: dict[str, list[dict]]) -> Path:
    """The same examples whose own rationale is every word: a file's rationales must replace it."""
    whole = {s: [ann(r["annotation_id"], r["docids"][0], r["classification"], (0, len(DOCS[r["docids"][0]].split())))
                 for r in rows] for s, rows in splits.items()}
    return eraser_folder(root, whole)


def masks(splits) -> dict[str, list[int] | None]:
    return {ex.id: ex.rationale for _, exs in splits.items() for ex in exs}


def invrat_reused(task, split: str, out: Path, annotations: Path) -> dict[str, list[int] | None]:
    """InvRat's rationale source reading back an annotation file it wrote (no training)."""
    (out / "rationales").mkdir(parents=True)
    (out / "rationales" / f"{task.name}.jsonl").write_bytes(annotations.read_bytes())
    (out / "rationales" / f"{task.name}.quality.json").write_text("{}", encoding="utf-8")
    examples, _ = invrat_rationales(task, split, out, {})
    return {ex.id: ex.rationale for ex in examples}


def test_the_same_annotations_give_the_same_masks_on_every_path(tmp_path: Path) -> None:
    loaded = masks(load_eraser(eraser_folder(tmp_path / "eraser", SPLITS)))
    file = write_lines(tmp_path / "rationales.jsonl", [r for rows in SPLITS.values() for r in rows])
    stale = stale_folder(tmp_path / "stale", SPLITS)
    from_file = masks(load_task(TaskConfig(name="t", data=str(stale), rationales=str(file))).splits)
    task = load_task(TaskConfig(name="t", data=str(stale), rationales="invrat"))
    from_invrat = {**invrat_reused(task, "train", tmp_path / "a", file),
                   **invrat_reused(task, "val", tmp_path / "b", file),
                   **invrat_reused(task, "test", tmp_path / "c", file)}
    assert loaded == from_file == from_invrat == EXPECTED


def test_an_example_the_file_does_not_annotate_keeps_no_stale_rationale(tmp_path: Path) -> None:
    stale = stale_folder(tmp_path / "stale", SPLITS)
    file = write_lines(tmp_path / "rationales.jsonl", SPLITS["train"])
    got = masks(load_task(TaskConfig(name="t", data=str(stale), rationales=str(file))).splits)
    assert got == {**EXPECTED, "v1": None, "s1": None}


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (ann("t1", "d1", "POS", (3, 9)), "annotation 't1': evidence span (3, 9) is outside document 'd1' (5 words)"),
        (ann("t1", "d1", "POS", (3, 1)), "end_token 1 < start_token 3"),
        (ann("t1", "d1", "POS", (-1, 2)), "greater than or equal to 0"),
        ({**ann("t1", "d1", "POS"), "evidences": [[{"docid": "d2", "start_token": 0, "end_token": 1}]]},
         "annotation 't1': evidence docid 'd2' is not among the annotation's documents (d1)"),
    ],
    ids=["past-the-end", "reversed", "negative", "other-document"],
)
def test_a_bad_span_is_the_same_one_line_error_on_every_path(tmp_path: Path, bad: dict, problem: str) -> None:
    splits = {**SPLITS, "train": [bad, *SPLITS["train"][1:]]}
    errors = []
    with pytest.raises(DataError) as err:
        load_eraser(eraser_folder(tmp_path / "eraser", splits))
    errors.append(err.value)
    file = write_lines(tmp_path / "rationales.jsonl", splits["train"])
    stale = stale_folder(tmp_path / "stale", SPLITS)
    with pytest.raises(DataError) as err:
        load_task(TaskConfig(name="t", data=str(stale), rationales=str(file)))
    errors.append(err.value)
    task = load_task(TaskConfig(name="t", data=str(stale), rationales="invrat"))
    with pytest.raises(DataError) as err:
        invrat_reused(task, "train", tmp_path / "out", file)
    errors.append(err.value)
    paths = [str(tmp_path / "eraser" / "train.jsonl"), str(file), str(tmp_path / "out" / "rationales" / "t.jsonl")]
    assert [e.path for e in errors] == paths
    assert {(e.line, e.field, e.problem) for e in errors} == {(errors[0].line, errors[0].field, errors[0].problem)}
    assert errors[0].line == 1 and problem in errors[0].problem
    assert all(len(str(e).splitlines()) == 1 for e in errors)
