"""Rows of a table (or of a ``datasets`` split) → :class:`Example`, through a :class:`ColumnMapping`.

Shared by the table and the hub loaders: one place decides what a row means,
what a rationale cell may hold and how a validation split is carved.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from rationale_commons.errors import DataError
from rationale_commons.records import Example
from rationale_commons.spans import spans_to_mask


class ColumnMapping(BaseModel):
    """Which column holds what. ``text`` and ``label`` are required; the rest optional.

    Column names that are all digit strings (``text="0", label="1"``; ints are
    accepted) address CSV/TSV columns by position, and the file is read as
    having no header row.

    ``rationale`` cells hold either a 0/1 list with one entry per word of the
    text (``[0, 1, 1, 0]``) or a list of ``[start, end]`` word spans, end
    exclusive (``[[1, 3]]``); the shape tells which (a list of pairs is spans,
    a flat list is a mask, ``[]`` is an empty rationale). In CSV/TSV the cell is
    that list as JSON text. A missing or empty cell means "no rationale" (None).
    """

    model_config = ConfigDict(extra="forbid")

    text: str = "text"
    label: str = "label"
    id: str | None = None
    query: str | None = None
    env: str | None = None
    rationale: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _int_to_str(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def used(self) -> dict[str, str]:
        """``{field: column}`` for every field that names a column."""
        return {f: col for f in _FIELDS if (col := getattr(self, f)) is not None}

    def is_positional(self) -> bool:
        """True when every named column is a position (all digit strings)."""
        cols = list(self.used().values())
        positional = [c.isdigit() for c in cols]
        if any(positional) and not all(positional):
            raise DataError(
                "columns must be all names or all positions (digits), got "
                + ", ".join(f"{f}={c!r}" for f, c in self.used().items())
            )
        return all(positional)

    def is_default(self) -> bool:
        return self == ColumnMapping()


_FIELDS = tuple(ColumnMapping.model_fields)

#: One mapping for every split, or one per split name (train / val / test; a split without one reads the defaults).
SplitColumns = ColumnMapping | Mapping[str, ColumnMapping] | None


def columns_for(columns: SplitColumns, split: str) -> ColumnMapping:
    """The mapping ``split``'s rows are read with."""
    if isinstance(columns, Mapping):
        return columns.get(split) or ColumnMapping()
    return columns or ColumnMapping()


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _scalar_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a label 1.0 read from a float column means "1"
    return str(value)


def parse_rationale(value: Any, n_words: int) -> list[int] | None:
    """A rationale cell → 0/1 word mask (see :class:`ColumnMapping`). Raises ``ValueError``."""
    if _blank(value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"rationale is not a JSON list: {exc.msg}") from None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"rationale must be a list, got {type(value).__name__}")
    if not value:
        return [0] * n_words
    if all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        spans = []
        for start, end in value:
            if not (isinstance(start, int) and isinstance(end, int)):
                raise ValueError(f"rationale span [{start}, {end}] must hold integers")
            spans.append((start, end))
        return spans_to_mask(spans, n_words)
    if all(isinstance(v, (int, float)) and v in (0, 1) for v in value):
        if len(value) != n_words:
            raise ValueError(f"rationale has {len(value)} entries but the text has {n_words} words")
        return [int(v) for v in value]
    raise ValueError("rationale must be a 0/1 list per word or a list of [start, end] word spans")


def row_to_example(
    row: Mapping[str, Any],
    columns: ColumnMapping,
    *,
    default_id: str,
    path: str | Path | None,
    line: int | None,
    row_index: int,
) -> Example:
    """One row → :class:`Example`; bad values raise :class:`DataError` naming path/line/column.

    ``line`` is the 1-based line for line-based files; otherwise the message
    names ``row_index`` (0-based).
    """

    def fail(message: str, column: str) -> DataError:
        if line is None:
            message = f"row {row_index}: {message}"
        return DataError(message, path=path, line=line, field=column)

    for field, column in columns.used().items():
        if column not in row:
            available = ", ".join(map(str, row.keys())) or "(none)"
            raise fail(
                f"missing column {column!r} for {field}; available columns: {available}", column
            )

    text = row[columns.text]
    if _blank(text):
        raise fail("empty text", columns.text)
    words = str(text).split()
    label = row[columns.label]
    if _blank(label):
        raise fail("empty label", columns.label)

    example_id = default_id
    if columns.id is not None:
        if _blank(row[columns.id]):
            raise fail("empty id", columns.id)
        example_id = _scalar_str(row[columns.id])

    optional: dict[str, str | None] = {}
    for field in ("query", "env"):
        column = getattr(columns, field)
        value = None if column is None else row[column]
        optional[field] = None if _blank(value) else str(value)

    rationale = None
    if columns.rationale is not None:
        try:
            rationale = parse_rationale(row[columns.rationale], len(words))
        except ValueError as exc:
            raise fail(str(exc), columns.rationale) from None

    try:
        return Example(
            id=example_id,
            words=words,
            label=_scalar_str(label),
            query=optional["query"],
            env=optional["env"],
            rationale=rationale,
        )
    except ValidationError as exc:  # pragma: no cover - the checks above catch what we know of
        raise fail(str(exc), columns.text) from None


class IdRegistry:
    """Rejects an id seen before in the same dataset (annotation files match by id)."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def add(
        self,
        example_id: str,
        *,
        path: str | Path | None,
        line: int | None,
        row_index: int,
        field: str,
    ) -> None:
        if example_id in self._seen:
            message = f"duplicate {field} {example_id!r} (first seen at {self._seen[example_id]})"
            if line is None:
                message = f"row {row_index}: {message}"
            raise DataError(message, path=path, line=line, field=field)
        self._seen[example_id] = f"{path}:{line}" if line is not None else f"{path} row {row_index}"


def carve_validation(
    train: Sequence[Example], val_fraction: float, split_seed: int
) -> tuple[list[Example], list[Example]]:
    """Split ``train`` into ``(train, val)`` deterministically.

    ``n_val = round(val_fraction * len(train))``, at least 1 when
    ``val_fraction > 0`` and at most ``len(train) - 1``; the validation rows are
    the first ``n_val`` indices of ``random.Random(split_seed).shuffle`` of
    ``range(len(train))``. Both parts keep file order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(train)
    if val_fraction == 0.0 or n < 2:
        return list(train), []
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    order = list(range(n))
    random.Random(split_seed).shuffle(order)
    chosen = set(order[:n_val])
    return (
        [ex for i, ex in enumerate(train) if i not in chosen],
        [ex for i, ex in enumerate(train) if i in chosen],
    )
