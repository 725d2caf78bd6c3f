"""One error type for bad input, so every CLI can print it as one line and exit non-zero."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data or configuration.

    The message names where the problem is (``file:line: field: what``) so a
    user can fix it without reading a traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.problem = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
        prefix = ": ".join(p for p in (where, field) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


def first_line(exc: BaseException) -> str:
    """An error as one line: its first non-blank line (validation errors of nested libraries span
    several), or its type name when it says nothing."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
