"""The speed benchmarks of issue 20 at their ``--quick`` size: each runs its real path (ours and the
reference side, interleaved) in seconds and writes the JSON that ``make_index.py`` reads into the
README's speed table. The measured numbers are not checked here (speed is a benchmark concern);
that the script runs and reports what the table needs is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_configs import tiny_config_dict, write_toml

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def run_script(name: str, out: Path, *args: str) -> dict:
    subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args, "--out", str(out)], cwd=REPO, env=ENV,
                   check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


@pytest.mark.parametrize("script", ["bench_generation.py", "bench_training_overhead.py", "bench_cci_transition.py",
                                    "bench_cci_official.py"])
def test_quick_speed_benchmark_writes_its_result(script, tmp_path):
    result = run_script(script, tmp_path / "result.json", "--quick")
    assert result["command"].startswith(f"python benchmarks/{script}")
    if script == "bench_generation.py":
        (row,) = result["runs"]
        assert row["ours_tokens_per_second"] > 0 and row["official_tokens_per_second"] > 0
        assert row["ours_over_official"] > 0
    elif script == "bench_training_overhead.py":
        assert result["ours_positions_per_second"] > 0 and result["minimal_positions_per_second"] > 0
        assert 0 < result["ours_share_of_matmul_rate"]
    elif script == "bench_cci_transition.py":
        assert set(result["levels"]) == {"block", "head"}
        assert all(row["transition_of_200_minutes"] >= 0 for row in result["levels"].values())
    else:
        assert all(size["forward_s_per_example"]["identical_attention_maps"] for size in result["sizes"])
        assert all(size[level]["max_abs_score_difference"] < 1e-12 for size in result["sizes"]
                   for level in ("block", "head"))
        for size in result["sizes"]:  # the floor: prefixes sorted at power-of-two lengths up to D
            floor = size["floor_s_per_example"]
            assert floor["sort_lengths"][-1] == size["doc_tokens"]
            assert all(n & (n - 1) == 0 for n in floor["sort_lengths"])
            assert 0 < floor["copied_share_of_entries"] < 1
            assert 0 < floor["fused_pass"] <= floor["read_maps_once"] + floor["copy_and_sort_needed_prefixes"]
            assert size["block"]["official_over_floor"] > 0


def test_task_baselines_of_the_demo_protocol(tmp_path):
    result = run_script("bench_task_baselines.py", tmp_path / "baselines.json",
                        "--config", "benchmarks/protocols/demo.toml")
    assert set(result["tasks"]) == {"pair", "sentiment", "topic"}
    assert all(row["n_test"] == 200 and 0 <= row["majority"] <= row["tfidf_logreg"] <= 100
               for row in result["tasks"].values())


TINY_TWO_TASKS = tiny_config_dict(methods=["lamol"])


def test_replay_quality_learns_each_task_alone_and_judges_its_samples(tmp_path):
    config = tmp_path / "tiny.toml"
    write_toml(config, TINY_TWO_TASKS)
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_replay_quality.py"), str(config),
                    "--samples", "3", "--jobs", "2", "--out", str(tmp_path / "runs"),
                    "--json", str(tmp_path / "replay.json")], cwd=REPO, env=ENV, check=True, capture_output=True)
    (variant,) = json.loads((tmp_path / "replay.json").read_text())["variants"]
    assert [row["task"] for row in variant["rows"]] == ["sentiment", "topic"]
    for row in variant["rows"]:
        assert row["generated"] == 3 and sum(row["verdicts"].values()) == 3
        assert 0 <= row["well_formed_share"] <= 1 and 0 <= row["score"] <= 100
    # each task was learned alone, in its own run dir
    for task in ("sentiment", "topic"):
        (run,) = json.loads((tmp_path / "runs" / "tiny" / task / "results.json").read_text())["runs"]
        assert run["order"] == [task]


def test_main_job_archives_its_runs_and_a_lost_run_dir_is_restored_from_the_archive(tmp_path):
    config = tmp_path / "tiny.toml"
    write_toml(config, tiny_config_dict(methods=["finetune", "lamol"]))
    runs, archive = tmp_path / "runs", tmp_path / "archive"

    def main_job(*extra: str) -> dict:
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_main_job.py"), "--config", str(config),
                        "--seeds", "0", "--out", str(runs), "--archive", str(archive), "--archive-every", "0.2",
                        "--json", str(tmp_path / "main_job.json"), *extra],
                       cwd=REPO, env=ENV, check=True, capture_output=True)
        return json.loads((tmp_path / "main_job.json").read_text())

    first = main_job()
    assert first["complete"] and [r["method"] for r in first["per_run"]] == ["finetune", "lamol"]
    assert sorted(p.parent.name for p in archive.glob("seed0/*/seed0/*/run.json")) == ["finetune", "lamol"]
    assert not list(archive.rglob(".*.part"))

    # the machine is lost: the run dir goes, the archive stays; the resumed job redoes nothing
    shutil.rmtree(runs)
    again = main_job("--resume")
    assert again["per_run"] == first["per_run"]
