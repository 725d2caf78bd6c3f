"""Players' shapes, the env one-hot with three environments, pair-task encoding, environment policies."""

from __future__ import annotations

import pytest
import torch

from invrat.config import InvRatConfig
from invrat.environments import (
    dev_environments,
    environments_for,
    index_environments,
    resolve_policy,
    rule_environments,
)
from invrat.model import build_players
from invrat.vocab import SEP_ID, Vocab, collate, encode
from rationale_commons.records import Example


def _ex(i: int, words: str, label: str = "a", query: str | None = None, env: str | None = None) -> Example:
    return Example(id=str(i), words=words.split(), label=label, query=query, env=env)


def test_env_aware_predictor_three_environments() -> None:
    cfg = InvRatConfig(hidden_dim=4, embedding_dim=6)
    players = build_players(cfg, vocab_size=20, n_labels=2, n_envs=3, init=None)
    fe = players["fe"]
    assert fe.encoder.input_size == 6 + 3
    ids = torch.randint(3, 20, (4, 5))
    lengths = torch.tensor([5, 4, 3, 5])
    real = (torch.arange(5)[None] < lengths[:, None]).float()
    z = real.clone()
    fe.eval()
    out = fe(ids, lengths, z, real, torch.tensor([0, 1, 2, 1]))
    assert out.shape == (4, 2)
    # the environment changes the prediction: same input, different one-hot
    same = ids[:1].expand(3, -1)
    logits = fe(same, lengths[:1].expand(3), z[:1].expand(3, -1), real[:1].expand(3, -1), torch.tensor([0, 1, 2]))
    assert not torch.allclose(logits[0], logits[1]) and not torch.allclose(logits[1], logits[2])


def test_pair_query_appended_after_document_and_doc_mask() -> None:
    ex = _ex(0, "the box is red", query="is the box blue ?")
    vocab = Vocab.build([ex])
    enc = encode(ex, vocab, max_len=3, max_query_len=10)
    assert enc.n_doc == 3  # truncated document first
    assert enc.ids[3] == SEP_ID
    assert enc.ids[4:] == vocab.ids("is the box blue ?".split())
    batch = collate([enc, encode(_ex(1, "red"), vocab, max_len=3, max_query_len=10)])
    assert batch.doc_mask[0].tolist() == [1, 1, 1] + [0] * 6
    assert batch.doc_mask[1].tolist() == [1] + [0] * 8
    assert batch.real_mask[1].tolist() == [1] + [0] * 8


def test_environment_policies() -> None:
    exs = [_ex(i, "w " * (i + 1), env=f"e{i % 3}") for i in range(9)]
    cfg = InvRatConfig()
    assert resolve_policy(exs, cfg) == "column"
    idx, names = index_environments(environments_for(exs, cfg, "column"))
    assert names == ["e0", "e1", "e2"] and idx[:3] == [0, 1, 2]
    merged = environments_for(exs, cfg.model_copy(update={"env_map": {"e0": "x", "e1": "x", "e2": "y"}}), "column")
    assert set(merged) == {"x", "y"}
    no_env = [ex.model_copy(update={"env": None}) for ex in exs]
    assert resolve_policy(no_env, cfg) == "single"
    assert set(environments_for(no_env, cfg, "single")) == {"all"}
    hashed = rule_environments(no_env, "hash", 2)
    assert hashed == rule_environments(no_env, "hash", 2) and set(hashed) <= {"hash0", "hash1"}
    by_len = rule_environments(no_env, "length", 3)
    assert by_len[0] == "len0" and by_len[-1] == "len2"
    assert environments_for(no_env, cfg, "infer") is None


def test_dev_environments_only_where_the_policy_defines_them() -> None:
    cfg = InvRatConfig()
    dev = [_ex(i, "w w", env=f"e{i % 2}") for i in range(4)]
    assert dev_environments(dev, cfg, "column", ["e0", "e1"]) == [0, 1, 0, 1]
    assert dev_environments(dev, cfg, "column", ["e0"]) is None  # an environment training never saw
    assert dev_environments(dev[:1] + [dev[1].model_copy(update={"env": None})], cfg, "column", ["e0", "e1"]) is None
    merged = cfg.model_copy(update={"env_map": {"e0": "x", "e1": "x"}})
    assert dev_environments(dev, merged, "column", ["x"]) == [0, 0, 0, 0]
    assert dev_environments(dev, merged.model_copy(update={"env_map": {"e0": "x"}}), "column", ["x"]) is None
    hashed = dev_environments(dev, cfg.model_copy(update={"env_rule": "hash"}), "rule", ["hash0", "hash1"])
    assert hashed == [["hash0", "hash1"].index(n) for n in rule_environments(dev, "hash", 2)]
    for policy, rule in (("rule", "length"), ("single", "hash"), ("infer", "hash")):
        assert dev_environments(dev, cfg.model_copy(update={"env_rule": rule}), policy, ["e0", "e1"]) is None


def test_bigru_outputs_ignore_padding() -> None:
    from invrat.model import BiGRU, reverse_within_length

    torch.manual_seed(0)
    x = torch.arange(2 * 4, dtype=torch.float).view(2, 4)
    assert reverse_within_length(x, torch.tensor([3, 4])).tolist() == [[2, 1, 0, 3], [7, 6, 5, 4]]
    gru = BiGRU(3, 5).eval()
    seq = torch.randn(1, 3, 3)
    alone = gru(seq, torch.tensor([3]))
    padded = gru(torch.cat([seq, torch.randn(1, 2, 3)], dim=1), torch.tensor([3]))
    assert torch.allclose(alone, padded[:, :3], atol=1e-6)


def test_flat_keys_load_into_their_sections() -> None:
    """Flat keys (older TOML files, --set, [invrat] of rational_lamol, old run dirs' config.json) give the
    same config as sections; a key given both ways or an unknown key is an error naming it."""
    from pydantic import ValidationError

    from invrat.config import FLAT_KEYS, load_config, merge_settings

    flat = {"epochs": 3, "environments": "rule", "env_rule": "length", "hidden_dim": 8, "select_by": "invariance",
            "selection": "top_alpha", "restarts": 1, "progress": False}
    nested = {"game": {"epochs": 3, "selection": "top_alpha"}, "environments": {"policy": "rule", "env_rule": "length"},
              "players": {"hidden_dim": 8}, "experimental": {"select_by": "invariance"},
              "model_selection": {"restarts": 1}, "runtime": {"progress": False}}
    assert InvRatConfig(**flat) == InvRatConfig.model_validate(nested) == InvRatConfig.model_validate({**nested, "max_len": 400})
    cfg = InvRatConfig.model_validate(nested)
    assert cfg.flat() == {**InvRatConfig().flat(), **flat}
    assert InvRatConfig.model_validate(cfg.flat()) == cfg  # an old run dir's flat config.json
    assert len(FLAT_KEYS) == len(cfg.flat()) == 54
    assert cfg.model_copy(update={"epochs": 5}).game.epochs == 5 and cfg.model_copy(update={"epochs": 5}).players.hidden_dim == 8
    assert merge_settings(nested, {"epochs": 4})["game"] == {"epochs": 4, "selection": "top_alpha"}
    with pytest.raises(ValidationError, match="bogus"):
        InvRatConfig(bogus=1)
    with pytest.raises(ValidationError, match="given twice"):
        InvRatConfig.model_validate({"epochs": 2, "game": {"epochs": 3}})
    assert load_config(None, epochs=7, environments="single").environments.policy == "single"
