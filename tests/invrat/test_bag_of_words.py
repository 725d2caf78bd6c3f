"""The bag-of-words predictors (``players.predictor = "bag_of_words"``): they read the shown words
only, and the game with them finds the planted words of the synthetic sentiment task in a few epochs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from invrat.config import InvRatConfig
from invrat.game import train_invrat
from invrat.model import build_players
from invrat.rationalize import rationalize
from invrat.trained_run import load_run
from rationale_commons.synthetic import make_task


def test_bag_of_words_predictor_reads_the_shown_words_only() -> None:
    cfg = InvRatConfig(predictor="bag_of_words", embedding_dim=6, hidden_dim=4)
    players = build_players(cfg, vocab_size=20, n_labels=2, n_envs=2, init=None)
    assert "embedding" in dict(players["g"].named_children())  # the generator keeps word vectors of its own
    fi = players["fi"]
    torch.nn.init.normal_(fi.weights.weight)
    ids = torch.tensor([[3, 4, 5, 6]])
    real = torch.ones(1, 4)
    z = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    other = ids.clone()
    other[0, 1], other[0, 3] = 7, 8  # other words where nothing is shown
    same = fi(other, torch.tensor([4]), z, real)
    assert torch.equal(fi(ids, torch.tensor([4]), z, real), same)
    assert torch.allclose(same, fi.weights.weight[[3, 5]].sum(0, keepdim=True))  # a sum of the shown words' weights
    other[0, 0] = 9  # another word where one is shown
    assert not torch.allclose(fi(other, torch.tensor([4]), z, real), same)


def test_the_game_with_bag_of_words_predictors_finds_the_planted_words(tmp_path: Path) -> None:
    splits = make_task("sentiment", seed=0, n_train=400, n_val=100, n_test=10, doc_words=(20, 40))
    config = InvRatConfig.model_validate({
        "predictor": "bag_of_words", "alpha": 0.1, "epochs": 6, "restarts": 1, "environments": "single",
        "selection": "top_alpha", "train_selection": "top_alpha", "gumbel": False, "num_threads": 1, "device": "cpu"})
    train_invrat(splits, config, tmp_path / "run")
    epochs = json.loads((tmp_path / "run" / "metrics.json").read_text())
    last = epochs[-1]
    # 3 planted words in 20-40: a random 10% scores token F1 about 0.1, and the label is at chance (0.5)
    assert last["dev_acc"] >= 0.9 and last["dev_token_f1_truncated"] >= 0.4, last

    run = load_run(tmp_path / "run")  # the run dir reads back as bag-of-words players
    assert type(run.players["fi"]).__name__ == "BagOfWords"
    rationales = rationalize(tmp_path / "run", splits.test)
    assert len(rationales) == len(splits.test) and all(sum(r.mask) > 0 for r in rationales)
