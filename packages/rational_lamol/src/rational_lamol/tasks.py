"""Tasks as LAMOL QA text (docs/algorithms.md §1).

Every example becomes ``c q __ans__ a EOS``: context ``c`` (the document), question ``q`` (the
example's query, or the task's fixed question for single-input tasks), answer ``a`` (the label as
text). The LM view prepends a generation token: ``GEN c q __ans__ a EOS``.

A task's ``context_words`` first cuts every document to a window of words (from its start or
around its evidence: :func:`crop_context`). A context longer than the model window is then
truncated **from its end**; ``q __ans__ a EOS`` is never cut
(the reference code could cut the answer). Pieces are tokenized separately and joined as ids, so
the document's token span and each document token's character offsets are known exactly:
:func:`encode_qa` returns them for CCI's rationale alignment.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rational_lamol.answers import check_answers
from rational_lamol.config import RATIONALE_KEYWORDS, SYNTHETIC_PREFIX, ExperimentConfig, TaskConfig
from rationale_commons.errors import DataError, first_line
from rationale_commons.records import Example, Splits

ANS_TOKEN = "__ans__"
PAD_TOKEN = "__pad__"
SHARED_GEN_TOKEN = "__gen__"

log = logging.getLogger("rational_lamol")


def task_gen_token(task: str) -> str:
    return f"__{task}__"


# --------------------------------------------------------------------------------------------
# Special tokens
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecialIds:
    """Ids of LAMOL's special tokens in one tokenizer."""

    ans: int
    eos: int
    pad: int
    gen: dict[str, int]  # task name (or "__shared__") -> generation token id
    shared_gen: bool

    def gen_id(self, task: str) -> int:
        return self.gen["__shared__"] if self.shared_gen else self.gen[task]

    @property
    def all_special(self) -> set[int]:
        return {self.ans, self.eos, self.pad, *self.gen.values()}


def special_token_strings(task_names: Sequence[str]) -> list[str]:
    """Every special token a run may need (shared and per-task gen tokens both, so one tokenizer
    serves every method and option)."""
    return [ANS_TOKEN, PAD_TOKEN, SHARED_GEN_TOKEN, *(task_gen_token(t) for t in task_names)]


def special_ids(tokenizer, task_names: Sequence[str], *, shared_gen: bool) -> SpecialIds:
    def one(token: str) -> int:
        ids = tokenizer.convert_tokens_to_ids([token])
        if not ids or ids[0] is None or ids[0] == tokenizer.unk_token_id:
            raise DataError(f"tokenizer lacks the special token {token!r} (add_special_tokens first)")
        return int(ids[0])

    if tokenizer.eos_token_id is None:
        raise DataError("tokenizer has no EOS token")
    gen = {"__shared__": one(SHARED_GEN_TOKEN)}
    gen.update({t: one(task_gen_token(t)) for t in task_names})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else one(PAD_TOKEN)
    return SpecialIds(ans=one(ANS_TOKEN), eos=int(tokenizer.eos_token_id), pad=int(pad), gen=gen, shared_gen=shared_gen)


# --------------------------------------------------------------------------------------------
# QA encoding
# --------------------------------------------------------------------------------------------


@dataclass
class EncodedQA:
    """``c q __ans__ a`` as ids (no GEN, no EOS), with where the document sits.

    ``doc_start:doc_end`` are the document's token positions in ``input_ids``;
    ``doc_offsets[k]`` are the character offsets of document token ``k`` in the document text
    ``" ".join(example.words)`` (the kept tokens only, after truncation); ``answer_start`` is the
    position of the first answer token (``__ans__`` sits at ``answer_start - 1``).
    """

    input_ids: list[int]
    doc_start: int
    doc_end: int
    doc_offsets: list[tuple[int, int]]
    answer_start: int
    truncated: bool = False

    @property
    def prompt_ids(self) -> list[int]:
        """``c q __ans__``: what greedy decoding starts from."""
        return self.input_ids[: self.answer_start]


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def encode_qa(
    example: Example,
    tokenizer,
    max_length: int,
    *,
    question: str | None = None,
    answer: str | None = None,
    ans_id: int | None = None,
    reserve: int = 2,
) -> EncodedQA:
    """Encode ``c q __ans__ a`` so that ``GEN`` + it + ``EOS`` fits ``max_length`` tokens.

    ``reserve`` tokens are kept free for GEN and EOS. The context is truncated from its end;
    when even an empty context leaves no room for ``q __ans__ a`` a :class:`DataError` names the
    example. ``question`` defaults to the example's query; ``answer`` to its label.
    """
    if ans_id is None:
        ans_id = int(tokenizer.convert_tokens_to_ids(ANS_TOKEN))
    q = example.query if example.query else question
    a = example.label if answer is None else answer
    if not q:
        raise DataError(f"example {example.id!r} has no query and the task has no fixed question")
    doc_text = " ".join(example.words)
    enc = tokenizer(doc_text, add_special_tokens=False, return_offsets_mapping=True)
    doc_ids, doc_offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    q_ids = _encode(tokenizer, " " + q.strip())
    a_ids = _encode(tokenizer, " " + a.strip())
    if not a_ids:
        raise DataError(f"example {example.id!r} has an empty answer")
    tail = len(q_ids) + 1 + len(a_ids)
    room = max_length - reserve - tail
    if room < 0:
        raise DataError(
            f"example {example.id!r}: question + answer take {tail + reserve} tokens, more than "
            f"max_length={max_length}; raise model.max_length"
        )
    truncated = len(doc_ids) > room
    doc_ids, doc_offsets = doc_ids[:room], doc_offsets[:room]
    ids = doc_ids + q_ids + [ans_id] + a_ids
    return EncodedQA(
        input_ids=ids,
        doc_start=0,
        doc_end=len(doc_ids),
        doc_offsets=[(int(s), int(e)) for s, e in doc_offsets],
        answer_start=len(doc_ids) + len(q_ids) + 1,
        truncated=truncated,
    )


@dataclass
class TrainSequence:
    """One training item: the QA sequence ``c q __ans__ a EOS`` (loss from ``answer_start``)
    and the LM sequence ``GEN c q __ans__ a EOS`` (loss on every token after GEN)."""

    qa_ids: list[int]
    answer_start: int
    gen_id: int
    task: str
    pseudo: bool = False

    @property
    def lm_ids(self) -> list[int]:
        return [self.gen_id, *self.qa_ids]


# --------------------------------------------------------------------------------------------
# Task data
# --------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """A task's examples and how they become QA text."""

    config: TaskConfig
    splits: Splits
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    def answer(self, example: Example) -> str:
        return self.answers.get(example.label, example.label)

    def question(self) -> str:
        return self.config.default_question()

    def encode(self, example: Example, tokenizer, max_length: int, ans_id: int) -> EncodedQA:
        return encode_qa(
            example, tokenizer, max_length, question=self.question(), answer=self.answer(example), ans_id=ans_id
        )

    def sequences(self, split: str, tokenizer, max_length: int, ids: SpecialIds) -> list[TrainSequence]:
        out = []
        for ex in self.splits[split]:
            enc = self.encode(ex, tokenizer, max_length, ids.ans)
            out.append(
                TrainSequence(
                    qa_ids=[*enc.input_ids, ids.eos],
                    answer_start=enc.answer_start,
                    gen_id=ids.gen_id(self.name),
                    task=self.name,
                )
            )
        return out

    def texts(self) -> list[str]:
        """The corpus a fresh tokenizer is trained on: each train/val example as its QA text
        ``c q a`` (so frequent answers and questions become single tokens, as in a pretrained
        vocabulary), plus every test document (never its answer)."""
        out = []
        for split in ("train", "val"):
            for ex in self.splits[split]:
                out.append(f"{' '.join(ex.words)} {ex.query or self.question()} {self.answer(ex)}")
        out.extend(" ".join(ex.words) + (f" {ex.query}" if ex.query else "") for ex in self.splits.test)
        return out

def crop_context(example: Example, words: int, anchor: str = "start") -> Example:
    """The example with at most ``words`` document words (its rationale cut alike).

    ``anchor = "evidence"`` starts the window a quarter of it before the first rationale word, so
    the evidence and some context before it survive where a long document (a whole Wikipedia
    article in BoolQ) would otherwise lose it to truncation from the end. It reads the human
    rationale of test examples too: an oracle choice of passage, the same for every method.
    """
    if len(example.words) <= words:
        return example
    start = 0
    if anchor == "evidence" and example.rationale and 1 in example.rationale:
        start = min(max(0, example.rationale.index(1) - words // 4), len(example.words) - words)
    window = slice(start, start + words)
    rationale = None if example.rationale is None else example.rationale[window]
    return example.model_copy(update={"words": example.words[window], "rationale": rationale})


def evidence_kept(before: Sequence[Example], after: Sequence[Example]) -> float | None:
    """The share of rationale words that :func:`crop_context` kept (None: no rationale at all)."""
    total = sum(sum(ex.rationale) for ex in before if ex.rationale)
    return sum(sum(ex.rationale) for ex in after if ex.rationale) / total if total else None


def _cap(examples: list[Example], cap: int | None, seed: int) -> list[Example]:
    """At most ``cap`` examples: a seeded random subset kept in the data's order.

    Not the first ``cap``: data files are often sorted by label (ERASER Movies lists every
    negative review first), and a prefix would hold one label only.
    """
    if cap is None or len(examples) <= cap:
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), cap))
    return [examples[i] for i in keep]


def load_task(task: TaskConfig, *, data_seed: int = 0) -> TaskData:
    """Load one task's splits (capped), checking it is usable before any training starts."""
    if task.is_synthetic:
        from rationale_commons import synthetic

        kind = task.data[len(SYNTHETIC_PREFIX) :]
        sizes = {"n_train": task.max_train or 300, "n_val": task.max_val or 100, "n_test": task.max_test or 100}
        try:
            splits = synthetic.make_task(kind, seed=data_seed, **sizes, **(task.synthetic or {}))
        except (ValueError, TypeError) as exc:  # DataError from the spec; TypeError: an option given twice
            raise DataError(f"task {task.name!r}: {first_line(exc)}") from None
    else:
        from rationale_commons.loaders import ColumnMapping, load_data

        path = Path(task.data)
        looks_local = path.exists() or task.data.startswith((".", "/", "~")) or path.suffix
        if looks_local and not path.expanduser().exists():
            raise DataError(f"task {task.name!r}: data path does not exist", path=task.data)
        columns = ColumnMapping(**task.columns.model_dump()) if task.columns else None
        splits = load_data(str(path.expanduser()) if looks_local else task.data, columns, name=task.name, split_seed=data_seed)
    splits = Splits(
        name=task.name,
        train=_cap(splits.train, task.max_train, data_seed),
        val=_cap(splits.val, task.max_val, data_seed),
        test=_cap(splits.test, task.max_test, data_seed),
    )
    if task.rationales and task.rationales not in RATIONALE_KEYWORDS:
        splits = _override_rationales(splits, Path(task.rationales), task.name)
    if task.context_words is not None:
        splits = _crop_splits(splits, task)
    if not splits.train:
        raise DataError(f"task {task.name!r} has no training examples", path=task.data)
    if not splits.test:
        raise DataError(f"task {task.name!r} has no test examples", path=task.data)
    return TaskData(config=task, splits=splits, answers=resolve_answers(task, sorted({ex.label for _, exs in splits.items() for ex in exs})))


def resolve_answers(task: TaskConfig, labels: Sequence[str]) -> dict[str, str]:
    """The answer text of every label of the data, checked (non-empty, distinct; see
    ``answers.check_answers``). Without ``answers`` every label is its own answer; with it, a label
    it misses is an error unless ``unlisted_labels = "label"``."""
    given = dict(task.answers or {})
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise DataError(f"task {task.name!r}: answers given for labels not in the data: {unknown}")
    missing = sorted(set(labels) - set(given))
    if task.answers is not None and missing and task.unlisted_labels == "error":
        raise DataError(f"task {task.name!r}: labels {missing} have no answer; add them to answers, or set "
                        "unlisted_labels = \"label\" to answer with the label itself")
    answers = {label: given.get(label, label) for label in labels}
    try:
        check_answers(answers)
    except DataError as exc:
        raise DataError(f"task {task.name!r}: {exc}") from None
    return answers


def _crop_splits(splits: Splits, task: TaskConfig) -> Splits:
    cropped = Splits(name=splits.name, **{
        s: [crop_context(ex, task.context_words, task.context_anchor) for ex in exs] for s, exs in splits.items()
    })
    before = [ex for _, exs in splits.items() for ex in exs]
    after = [ex for _, exs in cropped.items() for ex in exs]
    n_cut = sum(len(a.words) < len(b.words) for a, b in zip(after, before, strict=True))
    kept = evidence_kept(before, after)
    log.info("%s: %d of %d documents cut to %d words (window from the %s)%s", task.name, n_cut, len(before),
             task.context_words, task.context_anchor, "" if kept is None else f"; {kept:.1%} of rationale words kept")
    return cropped


def _override_rationales(splits: Splits, path: Path, task: str) -> Splits:
    """Every example's rationale from an ERASER annotation file (``apply_rationales``: replaced,
    ``None`` for an example the file does not annotate; a bad span is a :class:`DataError`)."""
    from rationale_commons.loaders import apply_rationales

    if not path.is_file():
        raise DataError(f"task {task!r}: rationale file not found", path=path)
    applied = iter(apply_rationales([ex for _, exs in splits.items() for ex in exs], path))
    return Splits(name=splits.name, **{s: [next(applied) for _ in exs] for s, exs in splits.items()})


def load_tasks(config: ExperimentConfig) -> dict[str, TaskData]:
    """Load and check every task of a config (all errors before any training)."""
    tasks = {t.name: load_task(t, data_seed=config.data_seed) for t in config.tasks}
    return tasks


def check_fits(tasks: dict[str, TaskData], tokenizer, max_length: int) -> None:
    """Encode every example once so a question/answer that cannot fit fails before training."""
    ans_id = int(tokenizer.convert_tokens_to_ids(ANS_TOKEN))
    for task in tasks.values():
        for _, exs in task.splits.items():
            for ex in exs:
                task.encode(ex, tokenizer, max_length, ans_id)


def pseudo_sample_count(gamma: float, n_train: int, n_previous: int) -> list[int]:
    """``ceil(gamma * n_train)`` pseudo-samples split evenly over ``n_previous`` tasks
    (the first tasks get one more when it does not divide)."""
    if n_previous <= 0:
        return []
    total = math.ceil(gamma * n_train)
    base, extra = divmod(total, n_previous)
    return [base + (1 if k < extra else 0) for k in range(n_previous)]
