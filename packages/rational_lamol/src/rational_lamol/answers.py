"""Answer strings: how predictions and gold answers are compared, and what a task's answers must
satisfy so that exact match means something."""

from __future__ import annotations

import re
import string

from rationale_commons.errors import DataError


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and collapse whitespace (exact match is on this form)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


def check_answers(answers: dict[str, str]) -> None:
    """Answers are scored by exact match after ``normalize_answer``: each must keep some text and
    no two labels may share one, or an untrained model scores on them (a :class:`DataError`)."""
    empty = sorted(label for label, text in answers.items() if not normalize_answer(text))
    if empty:
        raise DataError(f"answers of labels {empty} are empty after normalisation (lower case, no punctuation)")
    by_text: dict[str, list[str]] = {}
    for label, text in answers.items():
        by_text.setdefault(normalize_answer(text), []).append(label)
    shared = {text: labels for text, labels in by_text.items() if len(labels) > 1}
    if shared:
        text, labels = next(iter(sorted(shared.items())))
        raise DataError(f"labels {sorted(labels)} share the answer {text!r} (after normalisation); answers must differ")
