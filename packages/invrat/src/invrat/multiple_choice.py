"""Multiple-choice data is refused (issue 21): InvRat classifies a document, or a (query, document)
pair, into labels shared by every example. A query that lists answer options (ERASER CoS-E's
``question [sep] a [sep] b``, a ``choices`` column read as text) would train a letter classifier
at chance without a warning."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

from rationale_commons.errors import DataError
from rationale_commons.records import Example

#: Separators that join a question to its options in one text field (MultiRC's single ``||``
#: joins a question to ONE candidate answer: a true/false pair, which is supported).
_OPTION_SEPARATORS = re.compile(r"\s*(?:\[sep\]|\|\|)\s*", re.IGNORECASE)


def option_count(query: str) -> int:
    """How many answer options ``query`` lists (0: none, an ordinary query)."""
    text = query.strip()
    if text[:1] in "[{":  # a list or {"text": [...], "label": [...]} cell written as text
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, dict):
            value = value.get("text", list(value.values()))
        if isinstance(value, list | tuple) and len(value) >= 2:
            return len(value)
    parts = [p for p in _OPTION_SEPARATORS.split(text) if p]
    return len(parts) - 1 if len(parts) >= 3 else 0  # the question, then two options or more


def refuse_multiple_choice(examples: Sequence[Example]) -> None:
    """A DataError when most examples with a query list answer options in it."""
    with_query = [ex for ex in examples if ex.query]
    listing = [ex for ex in with_query if option_count(ex.query or "")]
    if with_query and 2 * len(listing) >= len(with_query):
        first = listing[0]
        raise DataError(
            f"multiple choice is not supported: the query of {len(listing)} of {len(with_query)} examples lists "
            f"answer options (example {first.id!r}: {option_count(first.query or '')} options); give one row per "
            "(question + choice, document) with a true/false label instead",
            field="query",
        )
