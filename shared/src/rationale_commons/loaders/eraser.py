"""ERASER folders (DeYoung et al., ACL 2020) → :class:`Splits`.

A folder holds ``train.jsonl`` / ``val.jsonl`` / ``test.jsonl`` (one
:class:`Annotation` per line) and the documents, either as ``docs/<docid>``
(one whitespace-tokenized file per document) or as ``docs.jsonl`` (lines
``{"docid": ..., "document": "text"}``). Evidence offsets index the
document's whitespace tokens, end exclusive.

An annotation that reads several documents becomes one example whose words are
the documents' words concatenated in ``docids`` order (evidence offsets shifted
accordingly) and whose ``docid`` is the docids joined by
:data:`DOCID_SEPARATOR`; :func:`document_layout` undoes that given the
documents.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from rationale_commons.errors import DataError
from rationale_commons.loaders.columns import IdRegistry
from rationale_commons.loaders.jsonl import read_jsonl
from rationale_commons.records import SPLIT_NAMES, Annotation, Example, Splits
from rationale_commons.spans import Layout, evidence_mask

log = logging.getLogger("rationale_commons")

#: Joins the docids of a several-document example into its ``Example.docid``
#: (``|`` cannot occur in Wikipedia titles and is rare in file names).
DOCID_SEPARATOR = "|"


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of word objects.

    Loading BoolQ allocates ~10^7 strings inside ~10^4 lists; full collections
    triggered meanwhile traverse them all and double the load time. Nothing
    built here forms reference cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def is_eraser_folder(folder: str | Path) -> bool:
    """A folder with ``docs/`` or ``docs.jsonl`` and at least one ``{train,val,test}.jsonl``."""
    folder = Path(folder)
    has_docs = (folder / "docs").is_dir() or (folder / "docs.jsonl").is_file()
    return has_docs and any((folder / f"{split}.jsonl").is_file() for split in SPLIT_NAMES)


def check_docid(docid: str, docs_dir: Path) -> None:
    """A docid names a file under ``docs/``: no path separators, no leading dot."""
    if not docid or docid.startswith(".") or "/" in docid or "\\" in docid:
        raise DataError(f"unsafe docid {docid!r} (it names a file under docs/)", path=docs_dir)


def load_documents(folder: str | Path, docids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Whitespace tokens of the documents in ``folder`` (``docs/`` or ``docs.jsonl``).

    With ``docids``, only those are read (missing ones are left out: the caller
    decides how to report them); otherwise all documents are.
    """
    folder = Path(folder)
    docs_dir = folder / "docs"
    wanted = None if docids is None else set(docids)
    documents: dict[str, list[str]] = {}
    if docs_dir.is_dir():
        if wanted is None:
            names = sorted(
                p.name for p in docs_dir.iterdir() if p.is_file() and not p.name.startswith(".")
            )
        else:
            names = sorted(wanted)
        for docid in names:
            check_docid(docid, docs_dir)
            path = docs_dir / docid
            try:
                documents[docid] = path.read_text(encoding="utf-8").split()
            except FileNotFoundError:
                continue
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"not UTF-8 text: {exc.reason} at byte {exc.start}", path=path
                ) from None
        return documents
    docs_jsonl = folder / "docs.jsonl"
    if not docs_jsonl.is_file():
        raise DataError("no documents: expected a docs/ folder or docs.jsonl", path=folder)
    for line_no, row in read_jsonl(docs_jsonl):
        for key in ("docid", "document"):
            if key not in row:
                raise DataError(f"missing {key!r}", path=docs_jsonl, line=line_no, field=key)
        docid = str(row["docid"])
        if wanted is not None and docid not in wanted:
            continue
        document = row["document"]
        if isinstance(document, list):  # sentences or tokens
            document = " ".join(map(str, document))
        documents[docid] = str(document).split()
    return documents


def _read_annotation_lines(path: Path) -> list[tuple[int, Annotation]]:
    rows = []
    for line_no, raw in read_jsonl(path):
        try:
            rows.append((line_no, Annotation.model_validate(raw)))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or None
            raise DataError(err["msg"], path=path, line=line_no, field=field) from None
    if not rows:
        raise DataError("empty file (no annotations)", path=path)
    return rows


def read_annotations(path: str | Path) -> list[Annotation]:
    """The annotations of an ERASER ``.jsonl`` file, in file order (blank lines skipped)."""
    return [ann for _, ann in _read_annotation_lines(Path(path))]


def document_layout(
    example: Example, documents: Mapping[str, Sequence[str]] | None = None
) -> Layout:
    """Where each of an example's documents sits in ``example.words``.

    An example whose ``docid`` joins several docids (see :data:`DOCID_SEPARATOR`)
    is split back when ``documents`` holds every part and the lengths add up;
    otherwise the example is one document named ``example.document_id``.
    """
    docid = example.document_id
    parts = docid.split(DOCID_SEPARATOR)
    if (
        documents is not None
        and len(parts) > 1
        and docid not in documents
        and all(p in documents for p in parts)
    ):
        lengths = [len(documents[p]) for p in parts]
        if sum(lengths) == len(example.words):
            layout, offset = [], 0
            for part, length in zip(parts, lengths, strict=True):
                layout.append((part, offset, length))
                offset += length
            return layout
    return [(docid, 0, len(example.words))]


def load_eraser(folder: str | Path, *, name: str | None = None, skip_missing_docs: bool = False) -> Splits:
    """Load an ERASER folder.

    ``Example.id`` = ``annotation_id``; ``words`` = the documents' whitespace
    tokens; ``label`` = ``classification``; ``query`` = ``query``;
    ``rationale`` = the union of all evidence spans as a 0/1 word mask (all
    zeros when the annotation has no evidence); ``docid`` = the docid (joined
    by :data:`DOCID_SEPARATOR` for several). A missing split file gives an
    empty split. Only the documents the annotations name are read. An annotation naming a
    document that is not there is an error, or with ``skip_missing_docs`` left out (a warning counts them).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("no such folder", path=folder)
    with _gc_paused():
        return _load_eraser(folder, name=name, skip_missing_docs=skip_missing_docs)


def _load_eraser(folder: Path, *, name: str | None, skip_missing_docs: bool) -> Splits:
    files = {split: folder / f"{split}.jsonl" for split in SPLIT_NAMES}
    parsed = {
        split: _read_annotation_lines(path) for split, path in files.items() if path.is_file()
    }
    if not parsed:
        raise DataError(
            "no train.jsonl, val.jsonl or test.jsonl in this ERASER folder", path=folder
        )
    needed = {docid for rows in parsed.values() for _, ann in rows for docid in ann.document_ids()}
    documents = load_documents(folder, needed)

    splits: dict[str, list[Example]] = {}
    ids = IdRegistry()
    skipped = 0
    for split, rows in parsed.items():
        path = files[split]
        examples = []
        for line, ann in rows:
            if skip_missing_docs and any(d not in documents for d in ann.document_ids()):
                skipped += 1
                continue
            ids.add(
                ann.annotation_id, path=path, line=line, row_index=line - 1, field="annotation_id"
            )
            if ann.classification is None or not ann.classification.strip():
                raise DataError("empty label", path=path, line=line, field="classification")
            docids = ann.document_ids()
            layout: list[tuple[str, int, int]] = []
            words: list[str] = []
            for docid in docids:
                if docid not in documents:
                    raise DataError(
                        f"unknown docid {docid!r} (no such document in {folder})",
                        path=path,
                        line=line,
                        field="docids",
                    )
                if not documents[docid]:
                    raise DataError(
                        f"empty text: document {docid!r} has no words",
                        path=path,
                        line=line,
                        field="docids",
                    )
                layout.append((docid, len(words), len(documents[docid])))
                words.extend(documents[docid])
            examples.append(
                Example.model_construct(  # every field is checked above; validating 10^7 words costs seconds
                    id=ann.annotation_id,
                    words=words,
                    label=ann.classification,
                    query=ann.query or None,
                    env=None,
                    rationale=evidence_mask(ann, layout, path=path, line=line),
                    docid=DOCID_SEPARATOR.join(docids),
                )
            )
        splits[split] = examples
    if skipped:
        log.warning("warning: %d annotation(s) left out: a document they name is not in %s", skipped, folder)
    return Splits.model_construct(
        name=name or folder.name, **{s: splits.get(s, []) for s in SPLIT_NAMES}
    )


def apply_rationales(
    examples: list[Example],
    annotations: list[Annotation] | str | Path,
    *,
    documents: Mapping[str, Sequence[str]] | None = None,
) -> list[Example]:
    """Copies of ``examples`` whose rationales come from ``annotations``, matched by id.

    ``annotations`` is a list or an annotation file's path (then errors name its
    lines). Each rationale is replaced, never merged: a matched example gets
    :func:`~rationale_commons.spans.evidence_mask` of its annotation, an example
    without one gets ``rationale=None``; annotations without an example are
    ignored, a duplicate annotation id is a :class:`DataError`. Evidence must
    name the example's document (``documents`` lets several-document examples
    be split back, see :func:`document_layout`) and lie inside it.
    """
    if isinstance(annotations, (str, Path)):
        path: Path | None = Path(annotations)
        located = _read_annotation_lines(path)
    else:
        path = None
        located = [(None, ann) for ann in annotations]
    by_id: dict[str, tuple[int | None, Annotation]] = {}
    for line, ann in located:
        if ann.annotation_id in by_id:
            raise DataError(
                f"duplicate annotation_id {ann.annotation_id!r}",
                path=path,
                line=line,
                field="annotation_id",
            )
        by_id[ann.annotation_id] = (line, ann)
    out = []
    for ex in examples:
        match = by_id.get(ex.id)
        if match is None:
            out.append(ex.model_copy(update={"rationale": None}))
            continue
        line, ann = match
        mask = evidence_mask(ann, document_layout(ex, documents), path=path, line=line)
        out.append(ex.model_copy(update={"rationale": mask}))
    return out
