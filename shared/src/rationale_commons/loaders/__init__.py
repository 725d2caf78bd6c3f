"""Loaders: any labelled text → :class:`~rationale_commons.records.Splits`.

:func:`load_data` picks the loader from the source:

- a folder with ``docs/`` or ``docs.jsonl`` and ``{train,val,test}.jsonl`` → :func:`load_eraser`;
- a table file (``.jsonl .json .csv .tsv .parquet``) or a folder of split
  files (``train.*``, ``val.*``/``validation.*``/``dev.*``, ``test.*``) → :func:`load_table`;
- a string that is not an existing path (and does not look like one) →
  :func:`load_hub` (``datasets.load_dataset``; hub names need the network).

Bad input raises :class:`~rationale_commons.errors.DataError` naming the file,
the 1-based line and the field.
"""

from __future__ import annotations

from pathlib import Path

from rationale_commons.errors import DataError
from rationale_commons.loaders.columns import (
    ColumnMapping,
    SplitColumns,
    carve_validation,
    columns_for,
    parse_rationale,
)
from rationale_commons.loaders.eraser import (
    DOCID_SEPARATOR,
    apply_rationales,
    document_layout,
    is_eraser_folder,
    load_documents,
    load_eraser,
    read_annotations,
)
from rationale_commons.loaders.hub import load_hub
from rationale_commons.loaders.jsonl import read_jsonl
from rationale_commons.loaders.table import TABLE_SUFFIXES, load_table, read_rows, split_files
from rationale_commons.records import Splits
from rationale_commons.spans import evidence_mask

__all__ = [
    "DOCID_SEPARATOR",
    "TABLE_SUFFIXES",
    "ColumnMapping",
    "SplitColumns",
    "apply_rationales",
    "carve_validation",
    "columns_for",
    "document_layout",
    "evidence_mask",
    "is_eraser_folder",
    "load_data",
    "load_documents",
    "load_eraser",
    "load_hub",
    "load_table",
    "parse_rationale",
    "read_annotations",
    "read_jsonl",
    "read_rows",
    "split_files",
]


def _looks_like_path(source: str | Path) -> bool:
    if isinstance(source, Path):
        return True
    return source.startswith(("/", ".", "~")) or Path(source).suffix.lower() in TABLE_SUFFIXES


def load_data(
    source: str | Path,
    columns: SplitColumns = None,
    *,
    name: str | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    skip_missing_docs: bool = False,
) -> Splits:
    """Load ``source`` (an ERASER folder, a table file or folder, or a ``datasets`` name).

    ``columns`` (one mapping, or one per split) applies to tables and hub datasets (ERASER has
    fixed fields). ``skip_missing_docs``: ERASER annotations naming an absent document are left out.
    ``val_fraction``/``split_seed`` carve a validation split from train where
    the source has none (tables, hub; ERASER folders are taken as they are).
    An existing path that fits no loader, and a missing path, are a
    :class:`DataError`.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if is_eraser_folder(path):
            return load_eraser(path, name=name, skip_missing_docs=skip_missing_docs)
        if (path / "docs").is_dir() or (path / "docs.jsonl").is_file():
            raise DataError("ERASER folder without train.jsonl, val.jsonl or test.jsonl", path=path)
        if split_files(path):
            return load_table(
                path, columns, val_fraction=val_fraction, split_seed=split_seed, name=name
            )
        raise DataError(
            "not a dataset folder: expected an ERASER folder (docs/ or docs.jsonl + train/val/test.jsonl) "
            "or split table files (train/val/validation/dev/test + "
            + "/".join(TABLE_SUFFIXES)
            + ")",
            path=path,
        )
    if path.is_file():
        if path.suffix.lower() not in TABLE_SUFFIXES:
            raise DataError(
                f"unsupported file type {path.suffix or '(none)'!r}; expected one of {', '.join(TABLE_SUFFIXES)}",
                path=path,
            )
        return load_table(
            path, columns, val_fraction=val_fraction, split_seed=split_seed, name=name
        )
    if path.exists() or _looks_like_path(source):
        raise DataError("no such file or folder", path=path)
    splits = load_hub(str(source), columns, val_fraction=val_fraction, split_seed=split_seed)
    return splits.model_copy(update={"name": name}) if name else splits
