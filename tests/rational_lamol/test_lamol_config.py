"""Bad configs and data are clear errors before any training starts."""

from __future__ import annotations

import json

import pytest

from rational_lamol import pipeline, trainer
from rational_lamol.config import load_config, parse_config
from rational_lamol.pipeline import run_experiment
from rationale_commons.errors import DataError


@pytest.fixture
def no_training(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("training started despite a bad config")

    monkeypatch.setattr(trainer, "train_task", boom)
    monkeypatch.setattr("rational_lamol.methods.train_task", boom)


def test_unknown_key_is_named(tiny_config):
    cfg = tiny_config()
    cfg["training"]["learning_rate"] = 1e-3
    with pytest.raises(DataError, match=r"training\.learning_rate: unknown key"):
        parse_config(cfg)
    cfg = tiny_config()
    cfg["tasks"][0]["colums"] = {}
    with pytest.raises(DataError, match=r"tasks\.0\.colums: unknown key"):
        parse_config(cfg)


def test_bad_values_are_named(tiny_config):
    cfg = tiny_config()
    cfg["orders"] = [["sentiment", "nope"]]
    with pytest.raises(DataError, match="not a permutation"):
        parse_config(cfg)
    cfg = tiny_config(gen_token="sometimes")
    with pytest.raises(DataError, match="training.gen_token"):
        parse_config(cfg)


def test_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(DataError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(DataError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_builtin_configs_parse():
    for name in ("default", "paper"):
        cfg = load_config(name)
        assert cfg.tasks and cfg.methods


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c["tasks"][0].update(data="/no/such/folder"), "does not exist"),
        (lambda c: c.update(methods=["finetune", "lamol-x"]), "unknown method 'lamol-x'"),
        (lambda c: c["tasks"][0].update(data="synthetic:nosuchtask"), "nosuchtask"),
        (lambda c: c.update(method_options={"lamol": {"gama": 1}}), "gama: unknown key"),
        (lambda c: c["tasks"][1].update(answers={"NEG": "negative"}), "answers given for labels"),
    ],
)
def test_bad_run_fails_before_training(tmp_path, tiny_config, no_training, change, match):
    cfg = tiny_config()
    change(cfg)
    with pytest.raises(DataError, match=match):
        run_experiment(parse_config(cfg), tmp_path / "run")


def test_existing_run_dir_needs_resume(tmp_path, tiny_config, no_training):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(DataError, match="--resume"):
        run_experiment(parse_config(tiny_config()), tmp_path / "run")
    with pytest.raises(DataError, match="config differs"):
        run_experiment(parse_config(tiny_config()), tmp_path / "run", resume=True)
    assert pipeline  # imported for monkeypatch targets


def test_resume_accepts_a_config_saved_before_a_defaulted_setting_existed(tiny_config):
    """config.json written by an older version lacks settings added since with neutral defaults;
    it is still the same run. A changed value is not."""
    from rational_lamol.pipeline import same_config

    config = parse_config(tiny_config())
    saved = json.loads(config.model_dump_json())
    for task in saved["tasks"]:
        del task["context_words"], task["context_anchor"]  # keys this version added
    assert same_config(saved, config)
    saved["training"]["lr"] *= 2
    assert not same_config(saved, config)
    assert not same_config({"name": "x", "unknown": 1}, config)
