"""``invrat evaluate``: ERASER metrics of a predictions file against gold rationales.

A thin wrapper over :func:`rationale_commons.metrics.eraser.score_results`
(numerically the ERASER benchmark's scorer): this module only reads files and
picks the gold annotations of a split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from invrat.baselines import (
    BASELINE_SEED,
    first_k_selection,
    label_baselines,
    random_selection,
    random_spread,
)
from rationale_commons.eraser_io import examples_to_annotations
from rationale_commons.errors import DataError
from rationale_commons.loaders import (
    SplitColumns,
    is_eraser_folder,
    load_data,
    load_documents,
    read_annotations,
    read_jsonl,
)
from rationale_commons.metrics.eraser import classification_report, score_results, summary
from rationale_commons.records import Annotation, Example, Splits

#: Draws of the random selection ``invrat evaluate`` scores by default: enough to see whether a
#: score lies outside the random spread (about 1 s per draw for 200 long reviews).
RANDOM_DRAWS = 20


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


#: What users call the splits (HuggingFace's "validation", "dev") → the split it is.
_SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}


def split_name(split: str) -> str:
    """``split`` as one of train / val / test (``dev`` and ``validation`` are val); a DataError otherwise."""
    if split not in _SPLIT_ALIASES:
        raise DataError(f"unknown split {split!r}; expected train, val (or dev, validation) or test", field="split")
    return _SPLIT_ALIASES[split]


def examples_of(splits: Splits, split: str, data: str | Path) -> list[Example]:
    """The examples of a split (aliases allowed); an empty split is a DataError."""
    examples = splits[split_name(split)]
    if not examples:
        raise DataError(f"split {split!r} is empty", path=data)
    return examples


def split_examples(data: str | Path, split: str, columns: SplitColumns = None) -> list[Example]:
    return examples_of(load_data(data, columns), split, data)


def gold_for(data: str | Path, split: str, examples: Sequence[Example]) -> tuple[list[Annotation], dict[str, list[str]]]:
    """Gold annotations and documents of a split: the ERASER file itself for ERASER folders
    (its evidence spans as written), else the examples' rationale masks as spans."""
    path = Path(data)
    if path.is_dir() and is_eraser_folder(path):
        gold = read_annotations(path / f"{split_name(split)}.jsonl")
        docids = {d for ann in gold for d in ann.document_ids()}
        return gold, load_documents(path, docids)
    return examples_to_annotations(examples), {ex.document_id: ex.words for ex in examples}


def _score(results: list[dict[str, Any]], gold: list[Annotation], documents: dict[str, list[str]], path: str | Path) -> dict[str, Any]:
    try:
        return score_results(results, gold, documents)
    except (ValueError, KeyError) as exc:
        raise DataError(str(exc).splitlines()[0], path=path) from None


def evaluate_file(
    predictions: str | Path, gold_data: str | Path, split: str = "test", columns: SplitColumns = None,
    *, train_split: str = "train", max_train_examples: int | None = None, skip_missing_docs: bool = False,
    random_draws: int = RANDOM_DRAWS,
) -> dict[str, Any]:
    """``{"summary": flat headline numbers, "scores": the full score_results dict, "n": counts,
    "baselines": the same numbers for a random and a first-k selection of as many words, and the
    accuracies of a TF-IDF logistic regression (trained on the first ``max_train_examples`` of
    ``train_split``) and of the majority class}``. ``random`` is the mean of ``random_draws`` draws
    (seeds 0, 1, ...; one draw is seed 0's alone) and ``random_draws`` their spread around the
    predictions' scores (:func:`invrat.baselines.random_spread`).

    Without gold rationales only the labels are scored (predictions need their ``classification``)."""
    if random_draws < 1:
        raise DataError(f"random_draws must be at least 1, got {random_draws}", field="random_draws")
    results = read_predictions(predictions)
    splits = load_data(gold_data, columns, skip_missing_docs=skip_missing_docs)
    examples = examples_of(splits, split, gold_data)
    by_id = {ex.id: ex for ex in examples}
    unknown = [r["annotation_id"] for r in results if str(r["annotation_id"]) not in by_id]
    if unknown:
        raise DataError(
            f"{len(unknown)} prediction(s) have no gold annotation in split {split!r} (first: {unknown[0]!r})",
            path=predictions,
        )
    predicted = [by_id[str(r["annotation_id"])] for r in results]
    baselines: dict[str, Any] = {}
    if any(ex.rationale is not None for ex in examples):
        gold, documents = gold_for(gold_data, split, examples)
        scores = _score(results, gold, documents, predictions)
        baselines["first_k"] = summary(_score(first_k_selection(results, documents), gold, documents, predictions))
        draws = [summary(_score(random_selection(results, documents, seed=BASELINE_SEED + i), gold, documents, predictions))
                 for i in range(random_draws)]
        spread = random_spread(draws, summary(scores))
        baselines["random"] = {key: spread[key]["mean"] for key in draws[0]}
        baselines["random_draws"] = spread
        n_gold = len(gold)
    else:  # labels only
        if any("classification" not in r for r in results):
            raise DataError(f"split {split!r} has no gold rationales and the predictions no labels: nothing to score "
                            "(write them with --format results)", path=predictions)
        report = classification_report([ex.label for ex in predicted], [str(r["classification"]) for r in results])
        scores = {"classification_scores": {"accuracy": report["accuracy"], "prf": report}}
        n_gold = len(examples)
    train = splits[split_name(train_split)][:max_train_examples]
    if train:
        baselines |= label_baselines(train, predicted)
    return {"summary": summary(scores), "scores": scores, "baselines": baselines,
            "n": {"predictions": len(results), "gold": n_gold}}
