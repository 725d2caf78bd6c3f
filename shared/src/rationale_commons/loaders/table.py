"""Table files (JSONL, JSON, CSV, TSV, Parquet) → :class:`Splits`.

Readers are stdlib (``json``, ``csv``) plus ``pyarrow`` for Parquet; no pandas.
Each reader yields ``(line, row_index, row)``: ``line`` is the 1-based line
where the row starts for line-based formats (JSONL, CSV, TSV) and None for
JSON and Parquet, whose errors name the 0-based ``row`` instead.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rationale_commons.errors import DataError
from rationale_commons.loaders.columns import (
    ColumnMapping,
    IdRegistry,
    SplitColumns,
    carve_validation,
    columns_for,
    row_to_example,
)
from rationale_commons.loaders.jsonl import read_jsonl
from rationale_commons.records import Example, Splits

TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}

Row = tuple[int | None, int, dict[str, Any]]


def _read_jsonl(path: Path) -> Iterator[Row]:
    for index, (line_no, row) in enumerate(read_jsonl(path)):
        yield line_no, index, row


def _read_json(path: Path) -> Iterator[Row]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON Lines saved as .json (as `datasets` writes it)
            yield from _read_jsonl(path)
            return
        raise DataError(f"malformed JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(
                "expected a JSON list of objects (or an object holding exactly one such list)",
                path=path,
            )
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"expected a JSON list of objects, got {type(data).__name__}", path=path)
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(
                f"row {index}: expected a JSON object, got {type(row).__name__}", path=path
            )
        yield None, index, row


def _has_header(
    first: list[str], rows: list[tuple[int, list[str]]], columns: ColumnMapping
) -> bool:
    """Header rule for CSV/TSV (see :func:`load_table`)."""
    if columns.is_positional():
        return False
    if not columns.is_default() or len(first) != 2 or {"text", "label"} & set(first):
        return True
    # Default mapping, two columns, no "text"/"label" names: header-less when the
    # first row's label occurs again further down the label column.
    return not any(len(r) == 2 and r[1] == first[1] for _, r in rows[1:])


def _read_delimited(path: Path, delimiter: str, columns: ColumnMapping) -> Iterator[Row]:
    old_limit = csv.field_size_limit(sys.maxsize)  # long documents exceed the 128 KiB default
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            records: list[tuple[int, list[str]]] = []
            start = 1
            try:
                for record in reader:
                    if record:  # blank lines
                        records.append((start, record))
                    start = reader.line_num + 1
            except csv.Error as exc:
                raise DataError(
                    f"malformed {path.suffix[1:].upper()}: {exc}", path=path, line=reader.line_num
                ) from None
    finally:
        csv.field_size_limit(old_limit)
    if not records:
        return
    if _has_header(records[0][1], records, columns):
        header = records[0][1]
        body = records[1:]
    else:
        header = [str(i) for i in range(len(records[0][1]))]
        if not columns.is_positional():  # auto-detected header-less text<TAB>label
            header = ["text", "label"]
        body = records
    for index, (line_no, record) in enumerate(body):
        if len(record) != len(header):
            raise DataError(
                f"expected {len(header)} fields, got {len(record)}", path=path, line=line_no
            )
        yield line_no, index, dict(zip(header, record, strict=True))


def _read_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"cannot read Parquet: {exc}", path=path) from None
    for index, row in enumerate(rows):
        yield None, index, row


def read_rows(path: str | Path, columns: ColumnMapping | None = None) -> Iterator[Row]:
    """Yield ``(line, row_index, row_dict)`` for every row of a table file."""
    path = Path(path)
    columns = columns or ColumnMapping()
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            yield from _read_jsonl(path)
        elif suffix == ".json":
            yield from _read_json(path)
        elif suffix in (".csv", ".tsv"):
            yield from _read_delimited(path, "," if suffix == ".csv" else "\t", columns)
        elif suffix == ".parquet":
            yield from _read_parquet(path)
        else:
            raise DataError(
                f"unsupported table type {suffix!r}; expected one of {', '.join(TABLE_SUFFIXES)}",
                path=path,
            )
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", path=path) from None


def read_table_file(
    path: str | Path, columns: ColumnMapping | None, *, split: str, ids: IdRegistry | None = None
) -> list[Example]:
    """All rows of one file as examples; ids default to ``f"{split}-{row_index}"``."""
    path = Path(path)
    columns = columns or ColumnMapping()
    ids = ids or IdRegistry()
    examples = []
    for line, index, row in read_rows(path, columns):
        ex = row_to_example(
            row, columns, default_id=f"{split}-{index}", path=path, line=line, row_index=index
        )
        ids.add(ex.id, path=path, line=line, row_index=index, field=columns.id or "id")
        examples.append(ex)
    if not examples:
        raise DataError("empty file (no data rows)", path=path)
    return examples


def split_of(path: Path) -> str | None:
    """``train`` / ``val`` / ``test`` for a file named after a split (``dev.csv`` → ``val``), else None."""
    return SPLIT_ALIASES.get(path.stem.lower())


def split_files(folder: str | Path) -> dict[str, Path]:
    """The table files in ``folder`` named after a split; two files for one split → :class:`DataError`."""
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.suffix.lower() not in TABLE_SUFFIXES:
            continue
        split = split_of(path)
        if split is None:
            continue
        if split in found:
            raise DataError(
                f"two files for the {split} split: {found[split].name} and {path.name}", path=folder
            )
        found[split] = path
    return found


def load_table(
    path_or_folder: str | Path,
    columns: SplitColumns = None,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    name: str | None = None,
) -> Splits:
    """Load a table file, or a folder of split files, into :class:`Splits`.

    Formats by suffix: ``.jsonl`` (one object per line), ``.json`` (a list of
    objects, an object holding one such list, or JSON Lines), ``.csv``,
    ``.tsv``, ``.parquet``. Document words are ``text.split()``.

    Splits:
    - a folder: ``train.*``, ``val.*`` (or ``validation.*``/``dev.*``) and
      ``test.*``; other files are ignored; any split may be absent.
    - a single file: named after a split (``test.tsv``) it is that split;
      otherwise it is the train split.
    - whenever there is a train split but no val split, a validation split is
      carved from train: ``round(val_fraction * n)`` rows (at least 1, none
      when ``val_fraction == 0``), the first rows of a
      ``random.Random(split_seed)`` permutation of the row indices; both parts
      keep file order (see :func:`~rationale_commons.loaders.columns.carve_validation`).

    ``columns``: one mapping, or one per split (a file whose text column has another name).

    Ids: the ``columns.id`` column when given, else ``"<split>-<row>"`` with
    ``<row>`` the 0-based data row in that split's file (carved val rows keep
    their ``train-<row>`` ids). Ids must be unique across the dataset.

    CSV/TSV header rule: column names that are digits (``ColumnMapping(text="0",
    label="1")``) mean positional columns and no header row. Otherwise the first
    row is the header, except for a two-column file read with the default
    mapping whose first row has neither ``text`` nor ``label`` and whose second
    cell occurs again in the second column (a label, not a column name): that
    file is header-less ``text<TAB>label`` (e.g. AG News' ``train.tsv``).
    """
    path = Path(path_or_folder)
    ids = IdRegistry()
    if path.is_dir():
        files = split_files(path)
        if not files:
            raise DataError(
                "no split files (train/val/validation/dev/test with suffix "
                + "/".join(TABLE_SUFFIXES)
                + ") in this folder",
                path=path,
            )
        default_name = path.name
    elif path.is_file():
        files = {split_of(path) or "train": path}
        default_name = path.parent.name if split_of(path) else path.stem
    else:
        raise DataError("no such file or folder", path=path)
    parts = {
        split: read_table_file(file, columns_for(columns, split), split=split, ids=ids)
        for split, file in files.items()
    }
    train, val = parts.get("train", []), parts.get("val", [])
    if train and "val" not in parts:
        train, val = carve_validation(train, val_fraction, split_seed)
    return Splits(name=name or default_name, train=train, val=val, test=parts.get("test", []))
