"""A seeded one-layer BERT and a word-piece tokenizer standing in for MiniLM-L6, so the tests of
``embedding = "minilm"`` and ``"minilm_cached"`` run without the package (``pythonpath = ["tests"]``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizer

PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "play", "##ing", "##ed", "un", "##fun", "##ny"]


def tiny_minilm(tmp_path: Path, words: Sequence[str] = (), window: int = 10) -> tuple[BertModel, BertTokenizer]:
    """A seeded 1-layer BERT (``window`` pieces per window) and a tokenizer knowing ``PIECES`` + ``words``."""
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(PIECES + [w for w in words if w not in PIECES]) + "\n")
    tokenizer = BertTokenizer(str(vocab_file))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=window + 2)
    return BertModel(config).eval(), tokenizer
