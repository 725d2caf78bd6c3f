"""End to end on tiny synthetic tasks: the run-dir contract, the shared task-1 model, resume."""

from __future__ import annotations

import json
import logging

import pytest

from rational_lamol.cli import setup_logging
from rational_lamol.config import parse_config
from rational_lamol.methods import LamolMethod
from rational_lamol.pipeline import run_experiment
from rational_lamol.registry import (
    available_methods,
    make_method,
    register_method,
    unregister_method,
)


def _check_contract(out, results, n_tasks=2):
    assert set(results) >= {"runs"}
    for run in results["runs"]:
        assert set(run) >= {"method", "seed", "order", "dir", "score_matrix", "baseline", "metrics", "environment"}
        rows = 1 if run["method"] == "multitask" else n_tasks
        assert len(run["score_matrix"]) == rows and all(len(r) == n_tasks for r in run["score_matrix"])
        assert len(run["baseline"]) == n_tasks
        assert set(run["metrics"]) == {"acc", "bwt", "fwt", "forgetting"}
        assert all(0 <= s <= 100 for r in run["score_matrix"] for s in r)
        run_dir = out / run["dir"]
        if run["method"] == "multitask":
            assert (run_dir / "1_all" / "model" / "config.json").exists()
            assert run["metrics"]["bwt"] is None
        else:
            for i, task in enumerate(run["order"], 1):
                folder = run_dir / f"{i}_{task}" / "model"
                assert (folder / "config.json").exists() and (folder / "tokenizer.json").exists()
            assert run["metrics"]["bwt"] is not None


@pytest.mark.slow
def test_tiny_end_to_end_and_contract(tmp_path, tiny_config):
    out = tmp_path / "run"
    setup_logging(out)  # what `rational-lamol run` does first: run.log is part of the run dir
    logger = logging.getLogger("rational_lamol")
    try:
        results = run_experiment(parse_config(tiny_config()), out)
    finally:
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
        logger.propagate = True
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["runs"] == json.loads(json.dumps(results["runs"]))
    assert [r["method"] for r in on_disk["runs"]] == ["finetune", "lamol", "multitask"]
    _check_contract(out, on_disk)
    assert json.loads((out / "config.json").read_text())["name"] == "tiny"
    log = (out / "run.log").read_text()
    assert "trained" in log and "sequences" in log  # the pipeline's progress reaches the run's log
    # task 1 trained once, shared by finetune and lamol
    fin, lam = on_disk["runs"][0], on_disk["runs"][1]
    assert fin["score_matrix"][0] == lam["score_matrix"][0]
    assert lam["stages"][0].get("task1_shared_from")
    # lamol reports its pseudo-samples
    assert "pseudo" in lam["stages"][1] and sum(lam["stages"][1]["pseudo"]["requested"].values()) == 6
    replayed = [json.loads(line) for line in (out / lam["dir"] / "2_topic" / "pseudo_samples.jsonl").read_text().splitlines()]
    assert len(replayed) == sum(lam["stages"][1]["pseudo"]["kept"].values())
    assert all("__ans__" in r["text"] for r in replayed)
    # the labels' own baselines, on the same training and test examples, reach the report
    baselines = json.loads((out / "task_baselines.json").read_text())
    assert set(baselines) == {"sentiment", "topic"}
    assert all(b["n_train"] == 12 and b["n_test"] == 6 and 0 <= b["majority"] <= 100 and 0 <= b["tfidf_logreg"] <= 100
               for b in baselines.values())
    from rational_lamol.report import write_report

    write_report([out], out / "report.html")
    rows = {r["task"]: r for r in json.loads((out / "report.json").read_text())["task_baselines"]}
    assert rows["topic"]["majority"] == baselines["topic"]["majority"]
    assert rows["sentiment"]["final_accuracy"]["lamol"] == lam["score_matrix"][-1][0]
    assert "label baselines" in (out / "report.html").read_text()


def test_a_task_sets_the_epochs_of_its_own_stage(tmp_path, tiny_config):
    """``epochs`` on a task: its stage trains that many; other stages and multitask keep [training]'s."""
    cfg = tiny_config()
    cfg["tasks"][1]["epochs"] = 3
    cfg["methods"] = ["finetune", "multitask"]
    runs = {r["method"]: r for r in run_experiment(parse_config(cfg), tmp_path / "run")["runs"]}
    steps = [stage["train"][0]["steps"] for stage in runs["finetune"]["stages"]]
    assert steps == [3, 9]  # 12 examples in batches of 4: 1 epoch of sentiment, 3 of topic
    assert runs["multitask"]["stages"][0]["train"][0]["steps"] == 6  # 24 examples, 1 epoch


@pytest.mark.slow
def test_resume_after_a_finished_task(tmp_path, tiny_config, monkeypatch):
    cfg = tiny_config()
    cfg["methods"] = ["lamol"]
    cfg["training"]["gen_token"] = "per_task"
    config = parse_config(cfg)
    out = tmp_path / "run"
    calls = []
    original = LamolMethod.learn

    def crash_on_second(self, stage, model, **kw):
        calls.append(stage.index)
        if stage.index == 1:
            raise KeyboardInterrupt("killed")
        return original(self, stage, model, **kw)

    monkeypatch.setattr(LamolMethod, "learn", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, out)
    assert (out / "sentiment-topic" / "seed0" / "lamol" / "1_sentiment" / "model" / "config.json").exists()
    assert not (out / "results.json").exists()
    monkeypatch.setattr(LamolMethod, "learn", original)
    calls.clear()
    seen = []
    monkeypatch.setattr(LamolMethod, "learn",
                        lambda self, stage, model, **kw: seen.append(stage.index) or original(self, stage, model, **kw))
    results = run_experiment(config, out, resume=True)
    assert seen == [1]  # task 1 was not trained again
    _check_contract(out, json.loads((out / "results.json").read_text()))
    # resuming a finished run trains nothing
    seen.clear()
    again = run_experiment(config, out, resume=True)
    assert seen == [] and again["runs"] == json.loads(json.dumps(results["runs"]))


def test_methods_can_be_added_from_another_module(tmp_path):
    from pydantic import BaseModel

    class ProbeOptions(BaseModel):
        k: int = 1

    @register_method
    class Probe(LamolMethod):
        name = "test-probe"
        Options = ProbeOptions

    try:
        assert "test-probe" in available_methods()
        assert {"finetune", "lamol", "multitask"} <= set(available_methods())
        m = make_method("test-probe", {"k": 3})
        assert m.options_dict() == {"k": 3} and isinstance(m, LamolMethod)
    finally:
        unregister_method("test-probe")
