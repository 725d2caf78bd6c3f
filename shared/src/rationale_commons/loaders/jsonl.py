"""JSON Lines reading shared by the loaders: one place words the errors of a bad line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rationale_commons.errors import DataError


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, object)`` for every non-blank line of a JSON Lines file, ``line`` 1-based.

    A line that is not JSON, or not a JSON object, raises :class:`DataError` naming the file and
    the line. A leading UTF-8 byte order mark is skipped (editors on Windows write one).
    """
    path = Path(path)
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"malformed JSON: {exc.msg} (column {exc.colno})", path=path, line=line_no
                ) from None
            if not isinstance(row, dict):
                raise DataError(
                    f"expected a JSON object, got {type(row).__name__}", path=path, line=line_no
                )
            yield line_no, row
