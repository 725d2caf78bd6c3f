"""Common random numbers, the random controls and byte-identical reruns, through the real pipeline
(tiny 2-block GPT-2 with dropout, three synthetic tasks with their planted rationales)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rational_lamol.cci import CCIResult
from rational_lamol.config import parse_config
from rational_lamol.controls import all_components, matched_random_freeze
from rational_lamol.pipeline import run_experiment
from rationale_commons.errors import DataError

TASKS = ["sentiment", "topic", "pair"]


def _config(methods, **overrides):
    d = {
        "name": "tiny-streams",
        "model": {"source": "gpt2-scratch", "n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 400,
                  "max_length": 80, "dropout": 0.1},  # dropout: the streams must cover it
        "tasks": [{"name": t, "data": f"synthetic:{t}", "max_train": 12, "max_val": 5, "max_test": 4}
                  for t in TASKS],
        "methods": methods,
        "method_options": {"rational-head": {"top_k": 2}},
        "training": {"epochs": 1, "lr": 5e-3, "batch_size": 4, "threads": 1, "gen_batch_size": 8, "gamma": 0.5},
    }
    d.update(overrides)
    return parse_config(d)


def _weights(run_dir, method):
    from safetensors.torch import load_file

    folder = run_dir / "-".join(TASKS) / "seed0" / method / f"3_{TASKS[-1]}" / "model"
    return load_file(str(folder / "model.safetensors"))


def _runs(results):
    return {r["method"]: r for r in results["runs"]}


def test_nothing_frozen_reproduces_lamol_exactly(tmp_path, monkeypatch):
    """With CCI choosing nothing, the rational methods' retrain draws exactly lamol's batches,
    pseudo-samples and dropout (the probe has its own stream): same scores, same weights."""
    import rational_lamol.rational as rational

    def choose_nothing(old, new, batches, *, level, top_k, beta, row_filter, tie_seed, n_without_rationale):
        skipped = n_without_rationale + sum(len(batch["input_ids"]) for batch in batches)
        return CCIResult(level=level, chosen=[], votes=[], n_used=0, n_skipped=skipped, scores_mean=[],
                         n_without_rationale=n_without_rationale)

    monkeypatch.setattr(rational, "identify_critical_components", choose_nothing)
    out = tmp_path / "run"
    runs = _runs(run_experiment(_config(["lamol", "rational-block", "rational-head"]), out))
    lamol = _weights(out, "lamol")
    for method in ("rational-block", "rational-head"):
        assert runs[method]["score_matrix"] == runs["lamol"]["score_matrix"]
        weights = _weights(out, method)
        assert all(np.array_equal(weights[k].numpy(), lamol[k].numpy()) for k in lamol)
        # the probe really trained (from its own stream), so the equality is not vacuous
        assert runs[method]["stages"][1]["probe_train"]["steps"] > 0


@pytest.fixture(scope="module")
def controls_run(tmp_path_factory):
    # listed before their counterparts: the pipeline runs each rational method first
    methods = ["random-head", "random-block", "rational-block", "rational-head"]
    root = tmp_path_factory.mktemp("controls")
    results = [run_experiment(_config(methods), root / name) for name in ("a", "b")]
    return root, results


def _cci(run_dir, method):
    return json.loads((run_dir / "-".join(TASKS) / "seed0" / method / "cci.json").read_text())


def test_controls_freeze_as_much_as_their_counterpart(controls_run):
    root, (results, _) = controls_run
    assert [r["method"] for r in results["runs"]] == ["rational-head", "random-head", "rational-block",
                                                      "random-block"]
    for control, rational in (("random-block", "rational-block"), ("random-head", "rational-head")):
        ours, theirs = _cci(root / "a", control), _cci(root / "a", rational)
        assert [(e["from_task"], e["to_task"]) for e in ours] == [(e["from_task"], e["to_task"]) for e in theirs]
        for mine, target in zip(ours, theirs, strict=True):
            assert len(mine["frozen"]) == len(target["frozen"]) and mine["matched_to"] == rational
            assert mine["param_counts"]["total"]["frozen"] > 0
        # the counterpart accumulates, so the control's freeze nests too
        assert all(c in ours[1]["frozen"] for c in ours[0]["frozen"])
    assert all("n_tied" in e for e in _cci(root / "a", "rational-block"))


def test_same_seed_and_threads_give_identical_results_json(controls_run):
    root, (results, again) = controls_run
    assert (root / "a" / "results.json").read_bytes() == (root / "b" / "results.json").read_bytes()
    env = results["runs"][0]["environment"]
    assert env["threads"] == 1 and env["device"] == "cpu" and env["versions"]["torch"]
    timings = json.loads((root / "a" / "timings.json").read_text())["runs"]
    assert len(timings) == 4 and all(t["wall_seconds"] > 0 for t in timings)
    assert all(stage["peak_rss_mb"] > 0 for t in timings for stage in t["stages"])  # Linux: the process's peak
    text = (root / "a" / "results.json").read_text()
    assert "wall_seconds" not in text and "peak_rss_mb" not in text


def test_a_control_needs_its_counterpart(tmp_path):
    with pytest.raises(DataError, match="needs 'rational-block'"):
        run_experiment(_config(["lamol", "random-block"]), tmp_path / "run")


def test_matched_random_freeze_keeps_earlier_and_draws_uniformly():
    universe = all_components(4, 2, "head")
    assert len(universe) == 8 and universe[:2] == [[0, 0], [0, 1]]
    rng = np.random.default_rng(0)
    counts = {b: 0 for b in range(4)}
    for _ in range(4000):
        freeze = matched_random_freeze(list(range(4)), [], 1, rng)
        counts[freeze[0]] += 1
    assert all(abs(c / 4000 - 0.25) < 0.03 for c in counts.values())
    grown = matched_random_freeze(universe, [[1, 1]], 3, rng)
    assert grown[0] == [1, 1] and len({tuple(c) for c in grown}) == 3
    shrunk = matched_random_freeze(universe, [[0, 0], [1, 1], [2, 0]], 2, rng)
    assert len(shrunk) == 2 and all(c in [[0, 0], [1, 1], [2, 0]] for c in shrunk)
    with pytest.raises(ValueError):
        matched_random_freeze(list(range(4)), [], 5, rng)
