"""``invrat evaluate``: ERASER metrics of a predictions file against gold rationales.

A thin wrapper over :func:`rationale_commons.metrics.eraser.score_results`
(numerically the ERASER benchmark's scorer): this module only reads files and
picks the gold annotations of a split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rationale_commons.eraser_io import examples_to_annotations
from rationale_commons.errors import DataError
from rationale_commons.loaders import (
    ColumnMapping,
    is_eraser_folder,
    load_data,
    load_documents,
    read_annotations,
    read_jsonl,
)
from rationale_commons.metrics.eraser import score_results, summary
from rationale_commons.records import Annotation, Example


def read_eraser_lines(path: str | Path) -> list[dict[str, Any]]:
    """The objects of an ERASER JSONL file (annotations or results): each has an annotation_id."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    rows = []
    for line, row in read_jsonl(path):
        if "annotation_id" not in row:
            raise DataError("not an ERASER line (no annotation_id)", path=path, line=line)
        rows.append(row)
    if not rows:
        raise DataError("empty file", path=path)
    return rows


def annotation_to_result(row: dict[str, Any]) -> dict[str, Any]:
    """An annotation line (``evidences``) as a results line with hard predictions only."""
    ann = Annotation.model_validate(row)
    by_doc: dict[str, list[dict[str, int]]] = {d: [] for d in ann.document_ids()}
    for ev in ann.all_evidences():
        by_doc.setdefault(ev.docid, []).append({"start_token": ev.start_token, "end_token": ev.end_token})
    return {
        "annotation_id": ann.annotation_id,
        "rationales": [{"docid": d, "hard_rationale_predictions": spans} for d, spans in by_doc.items()],
    }


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Results lines; annotation lines are accepted and read as hard predictions."""
    return [row if "rationales" in row else annotation_to_result(row) for row in read_eraser_lines(path)]


def split_examples(data: str | Path, split: str, columns: ColumnMapping | None = None) -> list[Example]:
    splits = load_data(data, columns)
    examples = splits[split]
    if not examples:
        raise DataError(f"split {split!r} is empty", path=data)
    return examples


def gold_for(data: str | Path, split: str, columns: ColumnMapping | None = None) -> tuple[list[Annotation], dict[str, list[str]]]:
    """Gold annotations and documents of a split: the ERASER file itself for ERASER folders
    (its evidence spans as written), else the examples' rationale masks as spans."""
    path = Path(data)
    if path.is_dir() and is_eraser_folder(path):
        ann_path = path / f"{split}.jsonl"
        if not ann_path.is_file():
            raise DataError(f"no {split}.jsonl", path=path)
        gold = read_annotations(ann_path)
        docids = {d for ann in gold for d in ann.document_ids()}
        return gold, load_documents(path, docids)
    examples = split_examples(data, split, columns)
    if all(ex.rationale is None for ex in examples):
        raise DataError(f"split {split!r} has no gold rationales to score against", path=data)
    return examples_to_annotations(examples), {ex.document_id: ex.words for ex in examples}


def evaluate_file(
    predictions: str | Path, gold_data: str | Path, split: str = "test", columns: ColumnMapping | None = None
) -> dict[str, Any]:
    """``{"summary": flat headline numbers, "scores": the full score_results dict, "n": counts}``."""
    results = read_predictions(predictions)
    gold, documents = gold_for(gold_data, split, columns)
    known = {g.annotation_id for g in gold}
    unknown = [r["annotation_id"] for r in results if str(r["annotation_id"]) not in known]
    if unknown:
        raise DataError(
            f"{len(unknown)} prediction(s) have no gold annotation in split {split!r} (first: {unknown[0]!r})",
            path=predictions,
        )
    try:
        scores = score_results(results, gold, documents)
    except (ValueError, KeyError) as exc:
        raise DataError(str(exc).splitlines()[0], path=predictions) from None
    return {"summary": summary(scores), "scores": scores, "n": {"predictions": len(results), "gold": len(gold)}}
