"""Initial word vectors: GloVe-format files, unknown words, and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from invrat import InvRatConfig
from invrat.embeddings import initial_embeddings
from invrat.vocab import PAD_ID, Vocab
from rationale_commons.errors import DataError


def _glove_file(path: Path, words: list[str], vectors: np.ndarray) -> Path:
    path.write_text("".join(f"{w} {' '.join(f'{x:.5f}' for x in v)}\n" for w, v in zip(words, vectors, strict=True)))
    return path


def test_known_words_get_their_vectors_unknown_words_their_spread(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    known = [f"known{i}" for i in range(300)]
    vectors = rng.normal(1.0, 2.0, size=(300, 4)).astype(np.float32)  # per-dimension mean 1, std 2
    path = _glove_file(tmp_path / "vectors.txt", known, vectors)
    unknown = [f"unknown{i}" for i in range(300)]
    vocab = Vocab(known + unknown)
    matrix, info = initial_embeddings(InvRatConfig(embedding="glove_file", glove_path=path), vocab)
    assert matrix is not None and info["dim"] == 4 and info["coverage"] == pytest.approx(300 / len(vocab))
    np.testing.assert_allclose(matrix[vocab.stoi["known7"]].numpy(), vectors[7], atol=1e-4)
    assert matrix[PAD_ID].abs().sum() == 0
    # unknown words are as visible as known ones (a frozen table of tiny vectors would hide them)
    drawn = matrix[[vocab.stoi[w] for w in unknown]].numpy()
    assert np.all(np.abs(drawn.std(axis=0) - 2.0) < 0.4) and np.all(np.abs(drawn.mean(axis=0) - 1.0) < 0.4)


def test_glove_file_errors_are_one_line(tmp_path: Path) -> None:
    vocab = Vocab(["a", "b"])
    with pytest.raises(DataError, match="GloVe file not found"):
        initial_embeddings(InvRatConfig(embedding="glove_file", glove_path=tmp_path / "missing.txt"), vocab)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(DataError, match="expected 3 numbers, found 2") as err:
        initial_embeddings(InvRatConfig(embedding="glove_file", glove_path=ragged), vocab)
    assert "\n" not in str(err.value)
    other = _glove_file(tmp_path / "other.txt", ["zzz"], np.ones((1, 3)))
    with pytest.raises(DataError, match="no vocabulary word has a pretrained vector"):
        initial_embeddings(InvRatConfig(embedding="glove_file", glove_path=other), vocab)
