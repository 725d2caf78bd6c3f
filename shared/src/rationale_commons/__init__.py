"""rationale_commons: the vocabulary shared by ``invrat`` and ``rational_lamol``.

- :mod:`records` — pydantic records: ERASER annotations/evidences/documents and
  the project's :class:`Example`.
- :mod:`loaders` — ERASER folders, table files, ``datasets`` sources → ``Splits``.
- :mod:`spans`, :mod:`alignment` — annotations → word masks (one function), spans ↔ word masks ↔ model-token masks.
- :mod:`metrics` — ERASER rationale metrics and lifelong-learning metrics (pure functions).
- :mod:`synthetic` — a deterministic suite of small tasks with planted rationales.
- :mod:`runtime` — seeding, device/precision choice, atomic run-dir writes.
- :mod:`errors`, :mod:`cli_errors` — one error type for bad input; every command's failures as one line.
"""

from rationale_commons.errors import DataError
from rationale_commons.records import Example, Splits

__all__ = ["DataError", "Example", "Splits"]
