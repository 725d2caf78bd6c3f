"""benchmarks/bench_invrat_eraser_protocol.py on two tiny ERASER folders: the user's three commands
per (seed, dataset), a result file per dataset with every baseline and the reading rule, a
second invocation that runs nothing again, and the tables printed from the result files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rationale_commons.eraser_io import write_eraser
from rationale_commons.synthetic import make_task

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_invrat_eraser_protocol.py"

PROTOCOL = """
name = "tiny"
seeds = [0, 1]
threads = 1
env = { OMP_NUM_THREADS = "1" }
options = ["--epochs", "1", "--restarts", "1", "--threads", "1", "--quiet"]

[[datasets]]
name = "movies"
data = "eraser/movies"
options = []

[[datasets]]
name = "scifact"
data = "eraser/scifact"
options = ["--max-examples", "20"]
"""


def test_protocol_runs_each_seed_once_and_writes_the_table(tmp_path: Path) -> None:
    for name, kind in (("movies", "sentiment"), ("scifact", "pair")):
        splits = make_task(kind, seed=0, n_train=30, n_val=8, n_test=8, doc_words=(10, 16))
        write_eraser(splits.model_copy(update={"name": name}), tmp_path / "data" / "eraser" / name)
    (tmp_path / "protocol.toml").write_text(PROTOCOL)
    env = {**os.environ, "RATIONALE_SHARED_DATA": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(SCRIPT), "--protocol", str(tmp_path / "protocol.toml"),
               "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("== ") == 4  # 2 seeds x 2 datasets

    movies = json.loads((tmp_path / "results" / "movies.json").read_text())
    assert movies["seeds_done"] == [0, 1] and movies["reference"] is not None
    seed = movies["seeds"]["0"]
    assert [s["command"].split()[:2] for s in seed["steps"]] == [["invrat", "train"], ["invrat", "rationalize"],
                                                                   ["invrat", "evaluate"]]
    assert "--seed 0" in seed["steps"][0]["command"] and seed["recipe"]["environments"] == "single"
    assert {"token_f1", "auprc", "iou_f1", "accuracy", "macro_f1"} <= set(seed["invrat"])
    assert {"random", "first_k", "tfidf_logreg", "majority"} <= set(movies["mean"])
    assert "token_f1_at_or_above_lei_label_only" in movies["reading"]
    scifact = json.loads((tmp_path / "results" / "scifact.json").read_text())
    assert "--max-examples 20" in scifact["seeds"]["1"]["steps"][0]["command"] and scifact["reference"] is None
    assert set(scifact["reading"]) == {"token_f1_above_random_and_first_k", "auprc_above_random_and_first_k",
                                       "accuracy_within_5_points_of_tfidf"}

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "== " not in again.stdout, again.stderr  # every seed is done
    assert json.loads((tmp_path / "results" / "movies.json").read_text())["seeds"] == movies["seeds"]
    printed = subprocess.run([*command, "--table"], env=env, capture_output=True, text=True, timeout=600)
    assert "| movies test (seeds 0, 1) | token_f1 |" in printed.stdout and "| scifact | 1 |" in printed.stdout, printed.stderr


def test_a_design_protocol_scores_the_dev_split_against_its_control(tmp_path: Path) -> None:
    splits = make_task("sentiment", seed=0, n_train=30, n_val=8, n_test=8, doc_words=(10, 16))
    write_eraser(splits.model_copy(update={"name": "movies"}), tmp_path / "data" / "eraser" / "movies")
    control = tmp_path / "control"
    control.mkdir()  # a control protocol's result file: only its kept models' dev accuracy is read
    (control / "movies.json").write_text(json.dumps({"seeds": {"0": {"kept": {"dev_acc": 0.25}}}}))
    design = PROTOCOL.split("[[datasets]]")[0].replace("seeds = [0, 1]", "seeds = [0]") + (
        f'split = "val"\ncontrol = "{control}"\nruns = "{tmp_path / "runs"}"\nresults = "{tmp_path / "results"}"\n'
        '[[datasets]]\nname = "movies"\ndata = "eraser/movies"\noptions = []\n')
    (tmp_path / "design.toml").write_text(design)
    env = {**os.environ, "RATIONALE_SHARED_DATA": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--protocol", str(tmp_path / "design.toml")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "movies" / "seed0" / "val_scores.json").is_file()
    movies = json.loads((tmp_path / "results" / "movies.json").read_text())
    assert movies["split"] == "val" and "--split val" in movies["seeds"]["0"]["steps"][2]["command"]
    versus = movies["against_control"]
    assert versus["control_dev_acc"] == 0.25 and versus["dev_acc"] == movies["seeds"]["0"]["kept"]["dev_acc"]
    assert versus["dev_acc_above_control_and_majority"] == (versus["dev_acc"] > max(0.25, versus["majority_dev_acc"]))
