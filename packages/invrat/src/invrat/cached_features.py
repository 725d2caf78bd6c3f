"""MiniLM features computed once per dataset and kept on disk (``embedding = "minilm_cached"``).

``embedding = "minilm"`` runs the frozen encoder inside every player at every step, a transformer
pass per player and step. Yet what the encoder reads changes in training only where a predictor's
rationale does; so here each player reads features that are computed once:

- the generator reads the whole sequence (document words, then ``<sep>`` and the query), so its
  features are the ``minilm`` generator's own: per position, the mean of its word's pieces' final
  states, the sequence encoded whole in consecutive windows of 510 pieces
  (:meth:`FrozenFeatures.sequences`, stored per dataset);
- a predictor must not learn anything of the words left out of the rationale, which in-context
  features of a shown word would carry; it reads each vocabulary word encoded alone
  (``[CLS] pieces [SEP]``), a static table masked by z as GloVe's is
  (:meth:`FrozenFeatures.vocabulary`, stored per vocabulary).

A file of the cache holds one list of sequences' features, named by a SHA-256 of the encoder's id,
the settings and the words encoded: another text, vocabulary or encoder version is another file,
never a stale one. An unreadable or mismatched file is computed again (a one-line warning). The
encoder is loaded only on a miss. Values are stored in fp16: MiniLM's final states are LayerNorm
outputs of order one, and fp16's relative rounding (5e-4) is far below the dropout the players apply.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from invrat.encoder import PIECES_PER_WORD, ContextualWords, contextual_words, minilm_id
from invrat.vocab import PAD_ID, SEP_ID, UNK_ID, Encoded, Vocab, collate
from rationale_commons.errors import first_line
from rationale_commons.runtime import atomic_file

log = logging.getLogger("invrat")

#: The tokenizer's token for each special word of a run's vocabulary (None: no piece, a zero vector).
VOCAB_SPECIALS: dict[int, str | None] = {PAD_ID: None, UNK_ID: "[UNK]", SEP_ID: "[SEP]"}
FORMAT = 1  # bump when the features' definition changes: older files stop matching
PIECES_PER_BATCH = 4096  # sequences x the longest one's pieces per encoder batch: ~8 windows of 512


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "invrat"


def cache_key(sequences: Sequence[Sequence[str]], encoder: str) -> str:
    """SHA-256 of what the features are a function of: the encoder, the settings and the words."""
    digest = hashlib.sha256(json.dumps({"format": FORMAT, "encoder": encoder, "pieces_per_word": PIECES_PER_WORD,
                                        "specials": VOCAB_SPECIALS}, sort_keys=True).encode())
    for words in sequences:
        digest.update(json.dumps(list(words)).encode() + b"\n")
    return digest.hexdigest()


def length_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices in batches of similar length, each at most ``budget`` positions once padded (one item at least)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if batches and (len(batches[-1]) + 1) * lengths[i] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def read_cached(path: Path, key: str, rows: int) -> torch.Tensor | None:
    """The features stored at ``path``; None when there are none, or (with a warning) none that can be trusted."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            stored_key = (handle.metadata() or {}).get("key")
            features = handle.get_tensor("features")
    except Exception as exc:  # safetensors' own error type is not exported stably
        problem = f"unreadable ({first_line(exc)})"
    else:
        if stored_key == key and features.dim() == 2 and features.shape[0] == rows:
            return features
        problem = "not the features its name stands for"
    log.warning("invrat: warning: %s: cached features %s; computing them again", path, problem)
    return None


def write_cached(path: Path, key: str, features: torch.Tensor) -> None:
    with atomic_file(path) as tmp:
        save_file({"features": features.contiguous()}, str(tmp), metadata={"key": key})


class FrozenFeatures:
    """The packaged MiniLM's features of a vocabulary's words and of sequences of them, read from
    ``cache_dir`` or computed on ``device`` (and stored) on a miss."""

    def __init__(self, vocab: Vocab, cache_dir: Path | None = None, *, device: str = "cpu", progress: bool = False) -> None:
        self.vocab, self.device, self.progress = vocab, device, progress
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.encoder_id = minilm_id()

    @cached_property
    def encoder(self) -> ContextualWords:
        """Loaded on the first miss only."""
        return contextual_words(self.vocab.itos, VOCAB_SPECIALS).to(self.device)

    def vocabulary(self) -> torch.Tensor:
        """(V, D) float32: each vocabulary word encoded alone; ``<pad>`` is zeros."""
        return torch.cat(self._features([[i] for i in range(len(self.vocab))], "vocabulary")).float()

    def sequences(self, encoded: Sequence[Encoded], what: str = "sequences") -> list[torch.Tensor]:
        """Each sequence's (L, D) fp16 features, every position in the context of the whole sequence."""
        return self._features([e.ids for e in encoded], what)

    def _features(self, id_lists: list[list[int]], what: str) -> list[torch.Tensor]:
        if not id_lists:
            return []
        itos = self.vocab.itos
        key = cache_key([[itos[i] for i in ids] for ids in id_lists], self.encoder_id)
        path = self.cache_dir / f"minilm-{key[:32]}.safetensors"
        lengths = [len(ids) for ids in id_lists]
        features = read_cached(path, key, sum(lengths))
        if features is None:
            start = time.perf_counter()
            features = self._encode(id_lists, what)
            write_cached(path, key, features)
            if self.progress:
                tqdm.write(f"invrat: MiniLM features of {len(id_lists)} {what} in {time.perf_counter() - start:.0f} s, "
                           f"cached in {path}", file=sys.stderr)
        return list(features.split(lengths))

    @torch.no_grad()
    def _encode(self, id_lists: list[list[int]], what: str) -> torch.Tensor:
        """(sum of lengths, D) fp16: the sequences' features, concatenated in order."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(id_lists)
        table = self.encoder.table.cpu()
        pieces = [int((table[ids] > 0).sum()) for ids in id_lists]  # the encoder's padding is in pieces, not words
        batches = length_batches(pieces, PIECES_PER_BATCH)
        for idx in tqdm(batches, desc=f"MiniLM features of {len(id_lists)} {what}", disable=not self.progress, leave=False):
            feats = self.encoder(collate([Encoded(id_lists[i], 0) for i in idx]).ids.to(self.device))
            feats = feats.to("cpu", torch.float16)
            for row, i in enumerate(idx):
                out[i] = feats[row, : len(id_lists[i])]
        return torch.cat(out)
