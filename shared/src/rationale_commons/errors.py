"""One error type for bad input, so every CLI can print it as one line and exit non-zero."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


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


def validation_message(exc: ValidationError, *, unknown_key_hint: str = "check the spelling") -> str:
    """A pydantic validation error as one line: ``field: problem; field: problem``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            problem = f"unknown key ({unknown_key_hint})"
        else:  # a validator's own message, without pydantic's "Value error, " prefix
            problem = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {problem}" if loc else problem)
    return "; ".join(parts)


def os_error_line(exc: OSError) -> str:
    """An OS error (disk full, permission denied, a folder where a file should go, ...) as one line
    naming the file: ``path: No space left on device``."""
    what = exc.strerror or first_line(exc)
    return f"{exc.filename}: {what}" if exc.filename else what
