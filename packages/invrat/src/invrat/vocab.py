"""Words → ids for the three players (docs/algorithms.md §3, "Pair tasks").

A sequence is ``document words[:max_len]`` then, for pair tasks, ``<sep>`` and
``query words[:max_query_len]`` appended at the END of the document, as the
InvRat recipe for BoolQ/SciFact says. ``doc_mask`` marks the document
positions: the only ones the generator may select and the only ones the
sparsity/continuity terms and the written rationale are taken over. The
separator and the query are always shown to the predictors.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rationale_commons.records import Example
from rationale_commons.runtime import write_json_atomic

PAD, UNK, SEP = "<pad>", "<unk>", "<sep>"
SPECIALS = (PAD, UNK, SEP)
PAD_ID, UNK_ID, SEP_ID = 0, 1, 2


class Vocab:
    """A word vocabulary with ``<pad>`` = 0, ``<unk>`` = 1, ``<sep>`` = 2."""

    def __init__(self, words: Sequence[str], *, lowercase: bool = True) -> None:
        self.itos: list[str] = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.lowercase = lowercase

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(
        cls, examples: Sequence[Example], *, lowercase: bool = True, min_count: int = 1, max_vocab: int = 60000,
        max_len: int | None = None,
    ) -> Vocab:
        """Most frequent training words (document, within ``max_len``, and query), ties broken alphabetically."""
        counts: Counter[str] = Counter()
        for ex in examples:
            words = ex.words if max_len is None else ex.words[:max_len]
            counts.update(w.lower() if lowercase else w for w in words)
            if ex.query:
                counts.update(w.lower() if lowercase else w for w in ex.query.split())
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked[: max(0, max_vocab - len(SPECIALS))], lowercase=lowercase)

    def ids(self, words: Sequence[str]) -> list[int]:
        get = self.stoi.get
        if self.lowercase:
            return [get(w.lower(), UNK_ID) for w in words]
        return [get(w, UNK_ID) for w in words]

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, {"lowercase": self.lowercase, "itos": self.itos}, indent=None)

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["itos"][len(SPECIALS):], lowercase=data["lowercase"])


@dataclass
class Encoded:
    """One example as ids: ``ids`` (L,), ``n_doc`` document positions at the front."""

    ids: list[int]
    n_doc: int


def encode(example: Example, vocab: Vocab, *, max_len: int, max_query_len: int) -> Encoded:
    """Document words (truncated), then ``<sep>`` + query words when the example has a query."""
    doc = vocab.ids(example.words[:max_len])
    ids = list(doc)
    if example.query and max_query_len > 0:
        ids.append(SEP_ID)
        ids.extend(vocab.ids(example.query.split()[:max_query_len]))
    if not ids:  # an empty document: one <unk> keeps the GRU happy; it is not a document position
        ids = [UNK_ID]
    return Encoded(ids=ids, n_doc=len(doc))


@dataclass
class Batch:
    """Padded tensors. B = batch, T = longest sequence in the batch."""

    ids: torch.Tensor  # (B, T) long
    lengths: torch.Tensor  # (B,) long, on CPU (for packing)
    real_mask: torch.Tensor  # (B, T) float: 1 on every non-pad position
    doc_mask: torch.Tensor  # (B, T) float: 1 on document positions
    labels: torch.Tensor | None  # (B,) long
    envs: torch.Tensor | None  # (B,) long
    features: torch.Tensor | None = None  # (B, T, D) float: precomputed word features (embedding = "minilm_cached")

    @property
    def query_mask(self) -> torch.Tensor:
        """(B, T) 1 on the separator and query positions."""
        return self.real_mask - self.doc_mask

    def to(self, device: str | torch.device) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.ids), self.lengths, move(self.real_mask), move(self.doc_mask), move(self.labels), move(self.envs),
                     move(self.features))


def collate(
    items: Sequence[Encoded], labels: Sequence[int] | None = None, envs: Sequence[int] | None = None,
    features: Sequence[torch.Tensor] | None = None,
) -> Batch:
    """``features``: each item's (L, D) word features (any float dtype), padded with zeros into float32."""
    lengths = torch.tensor([len(it.ids) for it in items], dtype=torch.long)
    T = int(lengths.max())
    ids = torch.full((len(items), T), PAD_ID, dtype=torch.long)
    doc_mask = torch.zeros((len(items), T))
    for row, it in enumerate(items):
        ids[row, : len(it.ids)] = torch.tensor(it.ids, dtype=torch.long)
        doc_mask[row, : it.n_doc] = 1.0
    real_mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    padded = None
    if features is not None:
        padded = torch.zeros(len(items), T, features[0].shape[-1])
        for row, f in enumerate(features):
            padded[row, : len(f)] = f
    return Batch(
        ids=ids,
        lengths=lengths,
        real_mask=real_mask,
        doc_mask=doc_mask,
        labels=None if labels is None else torch.tensor(list(labels), dtype=torch.long),
        envs=None if envs is None else torch.tensor(list(envs), dtype=torch.long),
        features=padded,
    )
