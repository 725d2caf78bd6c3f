"""A deterministic suite of small classification tasks with planted rationales.

Every label is decided by PLANTED words placed among neutral filler words, so the
true rationale is known exactly: ``Example.rationale`` is 1 at the planted positions
and 0 everywhere else.

Tasks (``SUITE_TASKS``), each with its own answer strings so that sequential training
interferes (the LAMOL demo shows forgetting):

- ``sentiment`` — "positive" / "negative": 1–3 sentiment words of the label's class.
- ``topic`` — "sports" / "science" / "politics": 1–3 keywords of the label's topic.
- ``pair`` — query + document, "yes" / "no". The document holds a few statements
  ``the <object> is <colour>`` about distinct objects; the query asks
  ``is the <object> <colour> ?`` about one of them. The rationale is the statement
  about the queried object. The document is drawn independently of the label, so the
  label cannot be read from the document alone. With ``pair_question="colour"`` the
  query asks ``what colour is the <object> ?`` and the answer is that colour
  ("red" / "blue" / "green" / "yellow"): a lookup rather than a comparison, which tiny
  language models learn in minutes (they do not learn the yes/no comparison on a CPU
  budget); with several statements the query still decides which colour is the answer.

Filler words are pseudo-words (consonant-vowel syllables, e.g. "kamo") that never
coincide with a planted word; the planted vocabularies of different tasks are disjoint.

Label noise (``label_noise=p``): a share p of the examples (every split) have text written for
another label than the recorded one, planted words and all; the rationale then explains at most
1 - p of the labels, so a label-correlated spurious token adds information (as in the InvRat
paper's beer reviews, where the rationale does not fix the rating).

Word noise (``word_noise=q``, single-input tasks): each planted word independently comes from another
label's vocabulary with probability q (it stays part of the rationale). With label noise the planted
words are redundant, one of them says all that the text says; with word noise every planted word
adds evidence, so the whole planted rationale is the only best one.

Pollution (InvRat §5 / docs/algorithms.md §3, ``polluted=True``): a spurious token
``SPURIOUS_TOKEN`` is prepended to some documents with a rate that depends on the
label and the environment. In train AND val (val has the train distribution, so
model selection on val does not see the shift) every example gets env "env0" or
"env1" (half each) and the token appears on exactly ``round(p * n)`` examples of each
(env, label) group, with ``p`` = 0.9 (env0) / 0.7 (env1) for the task's first label
(``TASK_LABELS[name][0]``: "positive", "sports", "yes") and 0.1 / 0.3 for the others. At test the correlation is reversed: ``p`` = 0.1
for the first label and 0.9 for the others, and test examples have ``env=None``
(unknown environment). The spurious token is never part of the rationale; when it is
prepended every planted position moves right by one, and the document is one word
longer than ``doc_words`` allows.

The same spec (and seed) always gives byte-identical data; each split draws from its
own random stream, so changing ``n_train`` does not change the test split.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rationale_commons.errors import DataError, validation_message
from rationale_commons.records import Example, Splits

__all__ = [
    "FILLER_WORDS",
    "PLANTED_WORDS",
    "SPURIOUS_TOKEN",
    "SUITE_TASKS",
    "TASK_LABELS",
    "SyntheticTaskSpec",
    "generate",
    "make_suite",
    "make_task",
    "spurious_selection_rate",
]

SUITE_TASKS: tuple[str, ...] = ("sentiment", "topic", "pair")

TASK_LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": ("positive", "negative"),
    "topic": ("sports", "science", "politics"),
    "pair": ("yes", "no"),
}

SPURIOUS_TOKEN = "@spurious"
"""Prepended to polluted documents; never used anywhere else, never in a rationale."""

# Words planted per label (single-input tasks).
_CLASS_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "sentiment": {
        "positive": (
            "excellent",
            "wonderful",
            "superb",
            "delightful",
            "brilliant",
            "charming",
            "great",
            "lovely",
        ),
        "negative": (
            "terrible",
            "awful",
            "dreadful",
            "boring",
            "horrible",
            "poor",
            "dull",
            "worst",
        ),
    },
    "topic": {
        "sports": ("football", "goal", "tennis", "coach", "stadium", "league", "match", "athlete"),
        "science": (
            "physics",
            "molecule",
            "experiment",
            "telescope",
            "protein",
            "laboratory",
            "theory",
            "atom",
        ),
        "politics": (
            "election",
            "senate",
            "parliament",
            "minister",
            "vote",
            "policy",
            "campaign",
            "governor",
        ),
    },
}

# The pair task's statement vocabulary.
_PAIR_OBJECTS: tuple[str, ...] = ("box", "ball", "cup", "hat", "car", "lamp")
_PAIR_COLOURS: tuple[str, ...] = ("red", "blue", "green", "yellow")
_PAIR_GLUE: tuple[str, ...] = ("the", "is", "?", "what", "colour")

PLANTED_WORDS: dict[str, frozenset[str]] = {
    "sentiment": frozenset(w for ws in _CLASS_WORDS["sentiment"].values() for w in ws),
    "topic": frozenset(w for ws in _CLASS_WORDS["topic"].values() for w in ws),
    "pair": frozenset(_PAIR_OBJECTS + _PAIR_COLOURS + _PAIR_GLUE),
}
"""Every word a task plants (documents and queries); disjoint across tasks and from filler."""


def _filler_vocabulary(size: int = 300) -> tuple[str, ...]:
    """``size`` two-syllable pseudo-words, the same on every machine (no randomness)."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]  # 70 syllables
    planted = set().union(*PLANTED_WORDS.values()) | {SPURIOUS_TOKEN}
    answers = (*(label for labels in TASK_LABELS.values() for label in labels), *_PAIR_COLOURS)
    words: list[str] = []
    # Walk the 70 x 70 grid with a stride coprime to 4900 so the words are varied.
    for k in range(len(syllables) ** 2):
        idx = (k * 337) % len(syllables) ** 2
        word = syllables[idx // len(syllables)] + syllables[idx % len(syllables)]
        # Also skip words that begin like an answer string ("none" vs "no").
        if word not in planted and not word.startswith(answers):
            words.append(word)
        if len(words) == size:
            break
    return tuple(words)


FILLER_WORDS: tuple[str, ...] = _filler_vocabulary()
"""The neutral vocabulary documents are padded with (300 pseudo-words)."""


class SyntheticTaskSpec(BaseModel):
    """Everything that determines a synthetic task; equal specs give identical data."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="One of SUITE_TASKS.")
    seed: int = Field(default=0, description="Seed of the task's random streams.")
    n_train: int = Field(default=300, ge=0)
    n_val: int = Field(default=60, ge=0)
    n_test: int = Field(default=100, ge=0)
    polluted: bool = Field(
        default=False, description="Prepend SPURIOUS_TOKEN with label- and env-dependent rates."
    )
    doc_words: tuple[int, int] = Field(
        default=(20, 60),
        description="Inclusive range of document lengths in words (before pollution).",
    )
    filler: Literal["uniform", "markov"] = Field(
        default="uniform",
        description="The words around the planted ones: 'uniform' draws each filler word independently (text a "
        "language model can only memorize); 'markov' follows a fixed chain in which every word has 4 possible "
        "successors (text with structure a language model can learn, as real text has).",
    )
    planted_per_doc: tuple[int, int] = Field(
        default=(1, 3), description="Inclusive range of planted words (sentiment, topic)."
    )
    pair_statements: int = Field(
        default=2, ge=1, le=len(_PAIR_OBJECTS), description="Statements per pair document."
    )
    pair_repeats: tuple[int, int] = Field(
        default=(1, 1),
        description="Pair task: inclusive range of how many times the queried statement is written (the same "
        "object and colour each time, every copy in the rationale); (1, 1) writes it once.",
    )
    pair_question: Literal["match", "colour"] = Field(
        default="match",
        description="Pair task: 'match' asks 'is the <object> <colour> ?' (yes / no); 'colour' asks "
        "'what colour is the <object> ?' (the answer is the colour).",
    )
    label_noise: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Share of examples whose text is written for another label (the rationale alone then "
        "predicts 1 - label_noise of the labels, so a spurious token carries extra information).",
    )
    word_noise: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Single-input tasks: each planted word independently comes from another label's vocabulary "
        "with this probability. Every planted word then carries part of the evidence (two that agree say more "
        "than one), so none is redundant and the full planted rationale is the only best one.",
    )
    train_rates: tuple[float, float] = Field(
        default=(0.9, 0.7),
        description="P(spurious token | first label) in env0 and env1; other labels get 1 - p.",
    )
    test_rate: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="P(spurious token | first label) at test; others 1 - p.",
    )

    @model_validator(mode="after")
    def _check(self) -> SyntheticTaskSpec:
        if self.name not in TASK_LABELS:
            raise ValueError(
                f"unknown synthetic task {self.name!r}; expected one of {', '.join(SUITE_TASKS)}"
            )
        lo, hi = self.doc_words
        if not 1 <= lo <= hi:
            raise ValueError(
                f"doc_words must be (min, max) with 1 <= min <= max, got {self.doc_words}"
            )
        p_lo, p_hi = self.planted_per_doc
        if not 1 <= p_lo <= p_hi <= lo:
            raise ValueError(
                f"planted_per_doc must satisfy 1 <= min <= max <= min doc length, got {self.planted_per_doc}"
            )
        r_lo, r_hi = self.pair_repeats
        if not 1 <= r_lo <= r_hi:
            raise ValueError(f"pair_repeats must be (min, max) with 1 <= min <= max, got {self.pair_repeats}")
        statements = self.pair_statements + r_hi - 1
        if self.name == "pair" and 4 * statements > lo:
            raise ValueError(
                f"pair documents need {4 * statements} words for {statements} "
                f"statements but doc_words allows {lo}"
            )
        if not all(0.0 <= p <= 1.0 for p in self.train_rates):
            raise ValueError(f"train_rates must lie in [0, 1], got {self.train_rates}")
        return self

    @property
    def labels(self) -> tuple[str, ...]:
        if self.name == "pair" and self.pair_question == "colour":
            return _PAIR_COLOURS
        return TASK_LABELS[self.name]


def _rng(spec: SyntheticTaskSpec, split_index: int) -> np.random.Generator:
    # crc32, not hash(): stable across processes and Python versions.
    return np.random.default_rng([spec.seed, zlib.crc32(spec.name.encode()), split_index])


def _balanced_labels(rng: np.random.Generator, labels: Sequence[str], n: int) -> list[str]:
    """n labels, as equal in count as possible, in random order."""
    pool = [labels[i % len(labels)] for i in range(n)]
    return [pool[i] for i in rng.permutation(n)]


def _another_label(rng: np.random.Generator, labels: Sequence[str], label: str) -> str:
    """A label other than ``label``, uniformly (the draw label and word noise both make)."""
    others = [lab for lab in labels if lab != label]
    return others[int(rng.integers(0, len(others)))]


#: successors of each filler word under ``filler = "markov"``: 4 distinct words, from a fixed seed
#: (the same on every machine), so the text has 2 bits of entropy per word that a language model can learn
FILLER_SUCCESSORS: np.ndarray = np.stack([
    np.random.default_rng([20261203, i]).choice(len(FILLER_WORDS), size=4, replace=False)
    for i in range(len(FILLER_WORDS))
])


def _filler(rng: np.random.Generator, n: int, kind: str = "uniform") -> list[str]:
    if kind == "uniform" or n == 0:
        return [FILLER_WORDS[i] for i in rng.integers(0, len(FILLER_WORDS), size=n)]
    word = int(rng.integers(0, len(FILLER_WORDS)))
    indices = [word]
    for pick in rng.integers(0, FILLER_SUCCESSORS.shape[1], size=n - 1):
        word = int(FILLER_SUCCESSORS[word, pick])
        indices.append(word)
    return [FILLER_WORDS[i] for i in indices]


def _single_input_doc(
    rng: np.random.Generator, spec: SyntheticTaskSpec, label: str
) -> tuple[list[str], list[int]]:
    length = int(rng.integers(spec.doc_words[0], spec.doc_words[1] + 1))
    k = int(rng.integers(spec.planted_per_doc[0], spec.planted_per_doc[1] + 1))
    words = _filler(rng, length, spec.filler)
    rationale = [0] * length
    positions = sorted(int(p) for p in rng.choice(length, size=k, replace=False))
    vocabulary = _CLASS_WORDS[spec.name][label]
    planted = rng.choice(len(vocabulary), size=k, replace=k > len(vocabulary))
    for pos, word_index in zip(positions, planted, strict=True):
        words[pos] = vocabulary[int(word_index)]
        rationale[pos] = 1
        # word noise: no draw at 0, so data without it is the same as before the option existed
        if spec.word_noise > 0 and rng.random() < spec.word_noise:
            words[pos] = _CLASS_WORDS[spec.name][_another_label(rng, spec.labels, label)][int(word_index)]
    return words, rationale


def _pair_example(
    rng: np.random.Generator, spec: SyntheticTaskSpec, label: str
) -> tuple[list[str], list[int], str]:
    # The document (and which statement is queried) is drawn before the label is used,
    # so it carries no information about the label.
    n = spec.pair_statements
    length = int(rng.integers(spec.doc_words[0], spec.doc_words[1] + 1))
    objects = [_PAIR_OBJECTS[i] for i in rng.choice(len(_PAIR_OBJECTS), size=n, replace=False)]
    colours = [_PAIR_COLOURS[i] for i in rng.integers(0, len(_PAIR_COLOURS), size=n)]
    # copies of the queried statement beyond the first: no draw at (1, 1), so such data is the
    # same as before the option existed
    extra = int(rng.integers(spec.pair_repeats[0], spec.pair_repeats[1] + 1)) - 1 if spec.pair_repeats != (1, 1) else 0
    n_filler = length - 4 * (n + extra)
    # Statement slot s goes after gaps[s] filler words (sorted gaps keep statements in order).
    gaps = sorted(int(g) for g in rng.integers(0, n_filler + 1, size=n + extra))
    filler = _filler(rng, n_filler, spec.filler)
    queried = int(rng.integers(0, n))
    words: list[str] = []
    rationale: list[int] = []
    queried_colours: list[int] = []  # where each copy of the queried statement names its colour
    used = 0
    for slot, s in enumerate([*range(n), *[queried] * extra]):
        words += filler[used : gaps[slot]]
        rationale += [0] * (gaps[slot] - used)
        used = gaps[slot]
        if s == queried:
            queried_colours.append(len(words) + 3)
        words += ["the", objects[s], "is", colours[s]]
        rationale += [1 if s == queried else 0] * 4
    words += filler[used:]
    rationale += [0] * (n_filler - used)
    if spec.pair_question == "colour":
        # the label is the queried statement's colour, in every copy (the other statements keep theirs)
        for i in queried_colours:
            words[i] = label
        return words, rationale, f"what colour is the {objects[queried]} ?"
    if label == "yes":
        asked = colours[queried]
    else:
        others = [c for c in _PAIR_COLOURS if c != colours[queried]]
        asked = others[int(rng.integers(0, len(others)))]
    query = f"is the {objects[queried]} {asked} ?"
    return words, rationale, query


def _spurious_flags(
    rng: np.random.Generator,
    labels: Sequence[str],
    envs: Sequence[str | None],
    rate_for: Mapping[tuple[str | None, str], float],
) -> list[bool]:
    """Exactly round(p * size) examples of each (env, label) group get the token."""
    flags = [False] * len(labels)
    groups: dict[tuple[str | None, str], list[int]] = {}
    for i, key in enumerate(zip(envs, labels, strict=True)):
        groups.setdefault(key, []).append(i)
    for key in sorted(groups, key=lambda k: (str(k[0]), k[1])):
        members = groups[key]
        k = int(round(rate_for[key] * len(members)))
        for pick in rng.choice(len(members), size=k, replace=False):
            flags[members[int(pick)]] = True
    return flags


def _make_split(spec: SyntheticTaskSpec, split: str, n: int) -> list[Example]:
    split_index = ("train", "val", "test").index(split)
    rng = _rng(spec, split_index)
    labels = _balanced_labels(rng, spec.labels, n)
    examples: list[dict[str, Any]] = []
    for i, label in enumerate(labels):
        query: str | None = None
        # label noise: the text is written for another label than the one recorded (no draw at 0,
        # so noise-free data is the same as before the option existed)
        text_label = label
        if spec.label_noise > 0 and rng.random() < spec.label_noise:
            text_label = _another_label(rng, spec.labels, label)
        if spec.name == "pair":
            words, rationale, query = _pair_example(rng, spec, text_label)
        else:
            words, rationale = _single_input_doc(rng, spec, text_label)
        examples.append(
            {
                "id": f"{spec.name}-{split}-{i:05d}",
                "words": words,
                "label": label,
                "query": query,
                "rationale": rationale,
            }
        )
    if spec.polluted:
        first = spec.labels[0]
        envs: list[str | None]
        if split == "test":
            envs = [None] * n
            rate_for = {
                (None, lab): spec.test_rate if lab == first else 1 - spec.test_rate
                for lab in spec.labels
            }
        else:
            envs = [("env0", "env1")[i % 2] for i in rng.permutation(n)]
            rate_for = {
                (env, lab): p if lab == first else 1 - p
                for env, p in zip(("env0", "env1"), spec.train_rates, strict=True)
                for lab in spec.labels
            }
        flags = _spurious_flags(rng, labels, envs, rate_for)
        for ex, env, flag in zip(examples, envs, flags, strict=True):
            ex["env"] = env
            if flag:
                ex["words"] = [SPURIOUS_TOKEN, *ex["words"]]
                ex["rationale"] = [0, *ex["rationale"]]
    return [Example(**ex) for ex in examples]


def generate(spec: SyntheticTaskSpec) -> Splits:
    """The task a spec describes, as train/val/test splits."""
    return Splits(
        name=spec.name,
        train=_make_split(spec, "train", spec.n_train),
        val=_make_split(spec, "val", spec.n_val),
        test=_make_split(spec, "test", spec.n_test),
    )


def make_task(name: str, **options: Any) -> Splits:
    """One synthetic task (see the module docstring); ``Splits.name`` is the task name.

    ``options`` are :class:`SyntheticTaskSpec` fields: ``seed``, ``n_train`` / ``n_val`` /
    ``n_test``, ``polluted``, ``doc_words``, ``planted_per_doc``, ``pair_statements`` (1 makes
    the pair task a plain comparison of the query's colour with the document's),
    ``label_noise``, ``word_noise``, ``pair_question`` (``"colour"`` asks for the queried object's colour instead of a yes/no
    comparison: a lookup tiny models learn), ``pair_repeats`` (how many times the queried statement
    is written), ``filler`` (``"markov"``: filler text with learnable structure), ``train_rates``, ``test_rate``.

    Raises :class:`DataError` for an unknown name or option, or inconsistent sizes.
    """
    try:
        spec = SyntheticTaskSpec(name=name, **options)
    except ValidationError as err:
        raise DataError(validation_message(err), field=f"synthetic:{name}") from None
    return generate(spec)


def make_suite(
    *,
    seed: int = 0,
    names: Sequence[str] = SUITE_TASKS,
    **sizes: Any,
) -> dict[str, Splits]:
    """Several tasks in the given order; ``sizes`` (any :func:`make_task` option but ``seed``)
    are passed to :func:`make_task`."""
    if isinstance(names, str):
        names = (names,)
    if len(set(names)) != len(names):
        raise DataError(f"task names repeat: {list(names)}")
    return {name: make_task(name, seed=seed, **sizes) for name in names}


def spurious_selection_rate(
    masks: Sequence[Sequence[float]], examples: Sequence[Example]
) -> float | None:
    """Fraction of the examples holding ``SPURIOUS_TOKEN`` whose mask selects it.

    ``masks[i]`` has one entry per word of ``examples[i]`` (values > 0.5 count as
    selected). Examples without the token are ignored; ``None`` when no example has it.
    """
    if len(masks) != len(examples):
        raise ValueError(f"{len(masks)} masks for {len(examples)} examples")
    holding = selected = 0
    for mask, example in zip(masks, examples, strict=True):
        if len(mask) != len(example.words):
            raise ValueError(
                f"mask of example {example.id!r} has {len(mask)} entries for {len(example.words)} words"
            )
        positions = [i for i, word in enumerate(example.words) if word == SPURIOUS_TOKEN]
        if positions:
            holding += 1
            selected += any(float(mask[i]) > 0.5 for i in positions)
    return selected / holding if holding else None
