"""Pydantic records: the ERASER format (DeYoung et al., ACL 2020) and the project's Example.

ERASER token offsets index the whitespace tokens of a document, end exclusive.
An annotation's human rationale is the union of all its evidence spans.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Evidence(BaseModel):
    """One rationale span over a document's whitespace tokens (``end_token`` exclusive)."""

    model_config = ConfigDict(extra="ignore")

    docid: str
    start_token: int = Field(ge=0)
    end_token: int = Field(ge=0)
    start_sentence: int = -1
    end_sentence: int = -1
    text: str = ""

    @field_validator("docid", mode="before")
    @classmethod
    def _docid_to_str(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _ordered(self) -> Evidence:
        if self.end_token < self.start_token:
            raise ValueError(f"end_token {self.end_token} < start_token {self.start_token}")
        return self


class Annotation(BaseModel):
    """One line of an ERASER ``{train,val,test}.jsonl`` (or of an annotation file we write)."""

    model_config = ConfigDict(extra="ignore")

    annotation_id: str
    classification: str | None = None
    docids: list[str] | None = None
    evidences: list[list[Evidence]] = Field(default_factory=list)
    query: str | None = None
    query_type: str | None = None

    @field_validator("annotation_id", "classification", mode="before")
    @classmethod
    def _scalar_to_str(cls, value: object) -> object:
        # BoolQ stores integer ids; some files store booleans as labels.
        return str(value) if isinstance(value, (int, bool)) else value

    @field_validator("docids", mode="before")
    @classmethod
    def _docids_to_str(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) else v for v in value]
        return value

    def all_evidences(self) -> list[Evidence]:
        return [ev for group in self.evidences for ev in group]

    def document_ids(self) -> list[str]:
        """The docids this annotation reads: ``docids``, else those named by evidences, else its id."""
        if self.docids:
            return list(self.docids)
        named = list(dict.fromkeys(ev.docid for ev in self.all_evidences()))
        return named or [self.annotation_id]


class Document(BaseModel):
    """A whitespace-tokenized document."""

    docid: str
    words: list[str]


class Example(BaseModel):
    """The project's unit of data: one labelled document, optionally with a query,
    an environment and a word-level rationale mask.

    ``words`` are the document's whitespace tokens; ``rationale`` (when known) has
    one 0/1 entry per word. ``docid`` is the ERASER document the words come from
    (``id`` when the source has none), so outputs can be written back as ERASER files.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    words: list[str]
    label: str
    query: str | None = None
    env: str | None = None
    rationale: list[int] | None = None
    docid: str | None = None

    @model_validator(mode="after")
    def _rationale_matches_words(self) -> Example:
        if self.rationale is not None:
            if len(self.rationale) != len(self.words):
                raise ValueError(
                    f"rationale has {len(self.rationale)} entries but the document has {len(self.words)} words"
                )
            if any(v not in (0, 1) for v in self.rationale):
                raise ValueError("rationale entries must be 0 or 1")
        return self

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def document_id(self) -> str:
        return self.docid if self.docid is not None else self.id


SPLIT_NAMES = ("train", "val", "test")


class Splits(BaseModel):
    """A dataset as named splits of examples (``train``, ``val``, ``test``; any may be empty)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "data"
    train: list[Example] = Field(default_factory=list)
    val: list[Example] = Field(default_factory=list)
    test: list[Example] = Field(default_factory=list)

    def __getitem__(self, split: str) -> list[Example]:
        if split not in SPLIT_NAMES:
            raise KeyError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, split)

    def items(self) -> Iterator[tuple[str, list[Example]]]:
        for split in SPLIT_NAMES:
            yield split, getattr(self, split)

    def labels(self) -> list[str]:
        """Sorted label set of the training split (all splits if train is empty)."""
        pool: Sequence[Example] = self.train or [ex for _, exs in self.items() for ex in exs]
        return sorted({ex.label for ex in pool})

    def has_query(self) -> bool:
        return any(ex.query for _, exs in self.items() for ex in exs)
