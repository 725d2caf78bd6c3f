"""The main job end to end: ``rational-lamol run`` → results.json, cci.json, the table, report.html."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rational_lamol.cli import app
from rational_lamol.config import builtin_config_path, load_config

runner = CliRunner()

TINY = """
name = "tiny-main"
methods = ["finetune", "lamol", "rational-block", "rational-head"]
seeds = [0]

[model]
source = "gpt2-scratch"
n_layer = 2
n_head = 2
n_embd = 32
vocab_size = 400
max_length = 80
dropout = 0.0

[[tasks]]
name = "sentiment"
data = "synthetic:sentiment"
rationales = "invrat"
max_train = 12
max_val = 4
max_test = 4

[[tasks]]
name = "topic"
data = "synthetic:topic"
max_train = 12
max_val = 4
max_test = 4

[training]
epochs = 1
lr = 1e-3
batch_size = 4
threads = 1
gamma = 0.5
gen_batch_size = 8

[method_options.rational-head]
top_k = 2

[invrat]
epochs = 1
restarts = 1
hidden_dim = 8
embedding_dim = 8
max_len = 80
device = "cpu"
"""


def test_default_config_is_the_main_job():
    cfg = load_config(builtin_config_path("default"))
    assert cfg.methods == ["finetune", "lamol", "rational-block", "random-block", "rational-head", "random-head",
                           "multitask"]
    assert [t.data for t in cfg.tasks] == ["synthetic:pair", "synthetic:sentiment", "synthetic:topic"]
    assert all(t.rationales == "invrat" for t in cfg.tasks)
    # every example gets a rationale, so CCI skips none for want of one
    assert cfg.invrat["selection"] == "top_alpha"
    assert cfg.model.is_scratch


def test_paper_configs_parse():
    for name in ("paper", "paper_smoke", "paper_cpu"):
        cfg = load_config(builtin_config_path(name))
        assert [t.name for t in cfg.tasks] == ["boolq", "movies", "scifact"]
        assert {"lamol", "rational-head"} <= set(cfg.methods)
        assert len(cfg.resolved_orders()) == 6


@pytest.mark.skipif(not (Path(__file__).resolve().parents[3] / "shared/data/eraser").is_dir(),
                    reason="../shared/data absent")
def test_paper_cpu_windows_keep_the_evidence_of_every_task():
    """The CPU-sized paper setting cuts documents around their evidence: most of BoolQ's evidence
    survives the 96-word window that whole Wikipedia articles would lose to truncation."""
    from rational_lamol.tasks import evidence_kept, load_task

    cfg = load_config(builtin_config_path("paper_cpu"))
    for task in cfg.tasks:
        data = load_task(task.model_copy(update={"data": str(Path(__file__).resolve().parents[3] / task.data[3:])}))
        full = load_task(task.model_copy(update={"data": str(Path(__file__).resolve().parents[3] / task.data[3:]),
                                                 "context_words": None}))
        assert all(len(ex.words) <= task.context_words for _, exs in data.splits.items() for ex in exs)
        kept = evidence_kept(full.splits.train, data.splits.train)
        assert kept is not None and kept > (0.5 if task.name != "movies" else 0.1)  # movies' evidence is spread out


def test_run_end_to_end_with_table_and_report(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results["runs"]] == ["finetune", "lamol", "rational-block", "rational-head"]
    for r in results["runs"]:
        assert len(r["score_matrix"]) == 2 and set(r["metrics"]) >= {"acc", "bwt", "forgetting"}
    for method in ("rational-block", "rational-head"):
        entries = json.loads((out / "sentiment-topic" / "seed0" / method / "cci.json").read_text())
        assert len(entries) == 1 and entries[0]["rationale_source"]["source"] == "invrat"
        assert entries[0]["scores_mean"] or entries[0]["n_used"] == 0
    assert "Lifelong metrics" in res.output and "rational-head" in res.output
    html = (out / "report.html").read_text()
    assert "Score matrices" in html and "Sample rationales" in html
    # the same report from the CLI's report command, aggregating two identical run dirs (mean ± std)
    import shutil

    shutil.copytree(out, tmp_path / "copy")
    res2 = runner.invoke(app, ["report", str(out), str(tmp_path / "copy"), "--out", str(tmp_path / "agg.html")])
    assert res2.exit_code == 0, res2.output
    assert (tmp_path / "agg.html").is_file() and "± 0.0" in res2.output


def test_run_bad_overrides_fail_fast(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "a"), "--seeds", "0,x"])
    assert res.exit_code != 0 and "error: " in res.output and "--seeds" in res.output
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "m"), "--methods", "lamol,bogus"])
    assert res.exit_code == 2 and "unknown method 'bogus'" in res.output
    assert not (tmp_path / "m" / "results.json").exists()
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "b"),
                              "--model", str(tmp_path / "missing.gguf")])
    assert res.exit_code != 0 and "error: " in res.output
    bad = TINY.replace("hidden_dim = 8", "hidden_dims = 8")
    config.write_text(bad)
    res = runner.invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "c")])
    assert res.exit_code != 0 and "hidden_dims" in res.output
    assert not (tmp_path / "c" / "results.json").exists()
