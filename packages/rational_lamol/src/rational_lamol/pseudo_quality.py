"""How far the replayed pseudo-samples can be trusted: one verdict per generated sample
(docs/algorithms.md §1).

A sample is the ids the model generated after its generation token. It gets the first verdict
that applies, in this order:

- **malformed**, not replayed (the parse of :func:`rational_lamol.pseudo.parse_pseudo_sample`
  rejects it): ``no_ans`` (no ``__ans__``), ``several_ans``, ``special_token`` (another special
  token before EOS), ``empty_question``, ``empty_answer``;
- **replayed but suspect**: ``truncated`` (ran into the window without EOS, so the answer may be
  cut), ``unknown_answer`` (the answer, normalised as exact match normalises it, is none of the
  task's answers), ``degenerate`` (the text before ``__ans__`` holds fewer than
  :data:`MIN_CONTEXT_WORDS` words besides the task's fixed question, i.e. it is little more than
  the prompt, or more than half of its word trigrams repeat earlier ones);
- ``well_formed``: everything else.

With one shared generation token a sample's task is unknown, so it is judged against every
replayed task (the union of their answers and question words). Tasks with a query per example
have no fixed question: only the length and repetition tests apply to them.

This module only counts: which samples are replayed stays the parse's decision (the papers'
rule), so recorded results do not move. A stage whose samples are mostly (more than half) not
well-formed is flagged: the run logs a warning and ``rational-lamol report`` repeats it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rational_lamol.answers import normalize_answer
from rational_lamol.tasks import SpecialIds, TaskData

MALFORMED = ("no_ans", "several_ans", "special_token", "empty_question", "empty_answer")
SUSPECT = ("truncated", "unknown_answer", "degenerate")
WELL_FORMED = "well_formed"
VERDICTS = (*MALFORMED, *SUSPECT, WELL_FORMED)

#: words a question must hold besides its task's fixed question to count as having a context
MIN_CONTEXT_WORDS = 3
#: above this share of repeated word trigrams a question is degenerate
MAX_REPEATED_TRIGRAMS = 0.5
#: a stage is flagged when fewer than this share of its samples are well-formed
MIN_WELL_FORMED_SHARE = 0.5


@dataclass(frozen=True)
class SampleProfile:
    """What a well-formed sample of a task looks like."""

    answers: frozenset[str]  # the task's answers, normalised
    prompt_words: frozenset[str]  # the words of its fixed question (empty: a query per example)

    def __or__(self, other: SampleProfile) -> SampleProfile:
        return SampleProfile(self.answers | other.answers, self.prompt_words | other.prompt_words)


def sample_profile(task: TaskData) -> SampleProfile:
    """A task's answers, and its fixed question's words when some training example has no query."""
    fixed = any(not ex.query for ex in task.splits.train)
    return SampleProfile(
        answers=frozenset(normalize_answer(a) for a in task.answers.values()),
        prompt_words=frozenset(_words(task.question())) if fixed else frozenset(),
    )


def _words(text: str) -> list[str]:
    return normalize_answer(text).split()


def until_eos(ids: Sequence[int], eos: int) -> list[int]:
    """The sample proper: everything before the first EOS (all of it when there is none)."""
    ids = list(ids)
    return ids[: ids.index(eos)] if eos in ids else ids


def malformed_reason(ids: Sequence[int], ids_map: SpecialIds) -> str | None:
    """Why the parse rejects ``ids`` (one of :data:`MALFORMED`), or ``None`` when it accepts them."""
    ids = until_eos(ids, ids_map.eos)
    n_ans = ids.count(ids_map.ans)
    if n_ans != 1:
        return "no_ans" if n_ans == 0 else "several_ans"
    others = ids_map.all_special - {ids_map.ans}
    if any(t in others for t in ids):
        return "special_token"
    k = ids.index(ids_map.ans)
    if k == 0:
        return "empty_question"
    if k == len(ids) - 1:
        return "empty_answer"
    return None


def repeated_ngram_share(words: Sequence[str], n: int = 3) -> float:
    """The share of ``words``' n-grams that repeat an earlier one (0 when there are none)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def text_verdict(question: str, answer: str, profile: SampleProfile) -> str:
    """``unknown_answer``, ``degenerate`` or ``well_formed`` for a parsed sample's decoded parts."""
    if normalize_answer(answer) not in profile.answers:
        return "unknown_answer"
    words = _words(question)
    context = [w for w in words if w not in profile.prompt_words]
    if len(context) < MIN_CONTEXT_WORDS or repeated_ngram_share(words) > MAX_REPEATED_TRIGRAMS:
        return "degenerate"
    return WELL_FORMED


def classify_pseudo_sample(
    ids: Sequence[int], ids_map: SpecialIds, decode: Callable[[list[int]], str], profile: SampleProfile
) -> str:
    """The verdict (one of :data:`VERDICTS`) of generated ``ids`` (GEN excluded)."""
    reason = malformed_reason(ids, ids_map)
    if reason is not None:
        return reason
    if ids_map.eos not in ids:
        return "truncated"
    body = until_eos(ids, ids_map.eos)
    k = body.index(ids_map.ans)
    return text_verdict(decode(body[:k]), decode(body[k + 1 :]), profile)


def tally(verdicts: Iterable[str], kept: int) -> dict[str, Any]:
    """Counts of one task's (or a stage's) samples: generated, parsed, kept (replayed),
    well-formed, its share of the generated, and every verdict's count."""
    counts = Counter(verdicts)
    generated = sum(counts.values())
    return {
        "generated": generated,
        "parsed": generated - sum(counts[v] for v in MALFORMED),
        "kept": kept,
        "well_formed": counts[WELL_FORMED],
        "well_formed_share": round(counts[WELL_FORMED] / generated, 4) if generated else None,
        "verdicts": {v: counts[v] for v in VERDICTS},
    }


def pooled(tallies: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several tallies (tasks of a stage, stages of several runs) as one."""
    verdicts: Counter[str] = Counter()
    kept = 0
    for t in tallies:
        verdicts.update(t["verdicts"])
        kept += t["kept"]
    return tally(verdicts.elements(), kept)


def is_flagged(counts: Mapping[str, Any]) -> bool:
    """Most samples are not well-formed (malformed, truncated, off-task or degenerate)."""
    share = counts["well_formed_share"]
    return share is not None and share < MIN_WELL_FORMED_SHARE


def main_problems(counts: Mapping[str, Any], top: int = 3) -> str:
    """``"degenerate 60%, no_ans 20%"``: the commonest verdicts other than well-formed, as shares."""
    n = counts["generated"]
    problems = sorted(((c, v) for v, c in counts["verdicts"].items() if v != WELL_FORMED and c), reverse=True)
    return ", ".join(f"{v} {c / n:.0%}" for c, v in problems[:top])


def describe(counts: Mapping[str, Any]) -> str:
    """``"12% well-formed of 80 (degenerate 60%, no_ans 20%)"``: the share and the main problems."""
    if not counts["generated"]:
        return "no samples"
    problems = main_problems(counts)
    return f"{counts['well_formed_share']:.0%} well-formed of {counts['generated']}" + (
        f" ({problems})" if problems else "")
