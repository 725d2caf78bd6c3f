"""Writing ERASER files: annotation JSONL and whole ERASER folders.

The inverse of :mod:`rationale_commons.loaders.eraser`: a 0/1 word mask becomes
evidence spans (:func:`~rationale_commons.spans.mask_to_spans`), one span per
evidence group, so ``load_eraser(write_eraser(splits))`` gives the splits back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from rationale_commons.errors import DataError
from rationale_commons.loaders.eraser import check_docid, document_layout
from rationale_commons.records import Annotation, Evidence, Example, Splits
from rationale_commons.runtime import write_jsonl_atomic
from rationale_commons.spans import mask_to_spans

__all__ = ["examples_to_annotations", "write_annotations", "write_eraser"]


def write_annotations(path: str | Path, annotations: Iterable[Annotation]) -> None:
    """Write annotations as ERASER JSONL (every field, ``evidences`` always present), atomically."""
    write_jsonl_atomic(path, [ann.model_dump(mode="json") for ann in annotations])


def examples_to_annotations(
    examples: Sequence[Example],
    masks: Sequence[Sequence[int] | None] | None = None,
    *,
    documents: Mapping[str, Sequence[str]] | None = None,
) -> list[Annotation]:
    """One ERASER annotation per example, with evidences from a word mask.

    ``masks[i]`` (default: ``examples[i].rationale``) is a 0/1 mask over
    ``examples[i].words``; ``None`` gives no evidence. Each maximal run of 1s is
    one evidence group; its ``text`` is the selected words. ``classification``
    is the example's label (replace it with ``model_copy`` for predictions).
    Several-document examples are split back per document when ``documents``
    is given (see :func:`~rationale_commons.loaders.eraser.document_layout`); a
    run crossing a document boundary becomes one evidence per document.
    """
    if masks is not None and len(masks) != len(examples):
        raise ValueError(f"{len(masks)} masks for {len(examples)} examples")
    annotations = []
    for i, ex in enumerate(examples):
        mask = ex.rationale if masks is None else masks[i]
        layout = document_layout(ex, documents)
        evidences: list[list[Evidence]] = []
        if mask is not None:
            mask = mask.tolist() if hasattr(mask, "tolist") else mask
            if len(mask) != len(ex.words):
                raise DataError(
                    f"mask has {len(mask)} entries but the document has {len(ex.words)} words",
                    field=f"masks[{i}] (example {ex.id!r})",
                )
            for start, end in mask_to_spans(mask):
                for docid, offset, length in layout:
                    lo, hi = max(start, offset), min(end, offset + length)
                    if lo < hi:
                        evidences.append(
                            [
                                Evidence(
                                    docid=docid,
                                    start_token=lo - offset,
                                    end_token=hi - offset,
                                    text=" ".join(ex.words[lo:hi]),
                                )
                            ]
                        )
        annotations.append(
            Annotation(
                annotation_id=ex.id,
                classification=ex.label,
                docids=[docid for docid, _, _ in layout],
                evidences=evidences,
                query=ex.query,
            )
        )
    return annotations


def write_eraser(
    splits: Splits, folder: str | Path, *, documents: Mapping[str, Sequence[str]] | None = None
) -> Path:
    """Write ``splits`` as an ERASER folder: ``docs/<docid>`` and ``{train,val,test}.jsonl``.

    Documents are written once per docid (one line of space-joined words;
    plain writes — the annotation files are written atomically, last); two
    examples giving one docid different words is a :class:`DataError`. An empty
    split writes no file (and removes a stale one), since loading treats a
    missing file as an empty split. Examples without a rationale are written
    with no evidence, so they load back with an all-zero rationale. Returns
    ``folder``.
    """
    folder = Path(folder)
    docs_dir = folder / "docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, tuple[str, Sequence[str]]] = {}
    for split, examples in splits.items():
        path = folder / f"{split}.jsonl"
        if not examples:
            path.unlink(missing_ok=True)
            continue
        for ex in examples:
            for docid, offset, length in document_layout(ex, documents):
                check_docid(docid, docs_dir)
                words = ex.words[offset : offset + length]
                if docid in written:
                    first_id, first_words = written[docid]
                    if first_words != words:
                        raise DataError(
                            f"examples {first_id!r} and {ex.id!r} give document {docid!r} different words",
                            field=f"{split} example {ex.id!r}",
                        )
                    continue
                written[docid] = (ex.id, words)
                (docs_dir / docid).write_text(" ".join(words) + "\n", encoding="utf-8")
        write_annotations(path, examples_to_annotations(examples, documents=documents))
    return folder
