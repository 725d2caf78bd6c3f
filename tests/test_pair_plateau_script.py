"""``benchmarks/pair_plateau.py`` reads finished run dirs: the first epoch below the level, per stage
of the task that follows another task, and the count of unlearned stages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _stage(task: str, scores: list[float], losses: list[float]) -> dict:
    return {"dir": f"x_{task}", "tasks": [task], "scores": scores, "train": [{"epoch_losses": losses}]}


def test_escape_epochs_and_unlearned_stages(tmp_path):
    runs = {
        ("sentiment-pair", 0): [_stage("sentiment", [99.0, 0.0], [3.0, 1.1]),
                                _stage("pair", [98.0, 100.0], [4.0, 1.8, 1.7, 1.2, 1.1])],
        ("sentiment-pair", 1): [_stage("sentiment", [99.0, 0.0], [3.0, 1.1]),
                                _stage("pair", [97.0, 30.0], [4.0, 1.8, 1.7, 1.6, 1.5])],
        ("pair-sentiment", 0): [_stage("pair", [100.0, 0.0], [4.0, 1.1]),  # pair first: not counted
                                _stage("sentiment", [99.0, 98.0], [3.0, 1.1])],
    }
    for (order, seed), stages in runs.items():
        folder = tmp_path / "run" / order / f"seed{seed}" / "lamol"
        folder.mkdir(parents=True)
        (folder / "progress.json").write_text(json.dumps({"stages": stages}))
    out = tmp_path / "plateau.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "pair_plateau.py"), str(tmp_path / "run"), "--out", str(out)],
                   cwd=REPO, check=True, capture_output=True, text=True)
    group = json.loads(out.read_text())["groups"]["run"]
    assert group["summary"] == {"runs": 2, "escaped": 1, "median_escape_epoch": 4, "escape_epochs": [4],
                                "unlearned": 1, "lowest_diagonal": 30.0}
    assert {(r["seed"], r["after"], r["escape_epoch"]) for r in group["runs"]} == {(0, "sentiment", 4), (1, "sentiment", None)}
    pooled = tmp_path / "pooled.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "pair_plateau.py"), str(tmp_path / "run"), str(tmp_path / "run"),
                    "--group", "both", "--out", str(pooled)], cwd=REPO, check=True, capture_output=True, text=True)
    assert json.loads(pooled.read_text())["groups"]["both"]["summary"]["runs"] == 4
