"""benchmarks/gpu_paper.py at its CPU scale (--tiny): --pack, then a run, then the JSON it writes.

The data is a stand-in for ../shared: three small ERASER folders with the paper's task names and
labels, built from the synthetic suite, and a GPT-2-format tokenizer (vocab.json + merges.txt)
trained on their text, so the script runs its real path (pack, GPT-2 tokenizer, a fresh GPT-2)
in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rationale_commons.eraser_io import write_eraser
from rationale_commons.records import Splits
from rationale_commons.synthetic import make_task

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_paper.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}

#: paper task -> (synthetic task, its labels -> the paper data's labels)
STAND_INS = {
    "boolq": ("pair", {"yes": "True", "no": "False"}),
    "movies": ("sentiment", {"positive": "POS", "negative": "NEG"}),
    "scifact": ("pair", {"yes": "SUPPORTS", "no": "REFUTES"}),
}


@pytest.fixture(scope="module")
def fake_shared(tmp_path_factory) -> Path:
    """``<root>/data/eraser/{boolq,movies,scifact}`` and ``<root>/models/gpt2-tokenizer``."""
    from tokenizers import ByteLevelBPETokenizer

    root = tmp_path_factory.mktemp("shared")
    texts = []
    for name, (kind, labels) in STAND_INS.items():
        splits = make_task(kind, seed=0, n_train=6, n_val=3, n_test=3, doc_words=(12, 20))
        relabelled = {split: [ex.model_copy(update={"label": labels[ex.label], "id": f"{name}_{ex.id}"})
                              for ex in examples] for split, examples in splits.items()}
        write_eraser(Splits(name=name, **relabelled), root / "data" / "eraser" / name)
        texts += [" ".join(ex.words) + " " + (ex.query or "") for exs in relabelled.values() for ex in exs]
    texts += ["What is the sentiment of this review? yes no negative positive supports refutes"] * 5
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tokenizer = root / "models" / "gpt2-tokenizer"
    tokenizer.mkdir(parents=True)
    bpe.save_model(str(tokenizer))
    return root


def _script(*args: str, cwd: Path, launch: list[str] | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(launch or [sys.executable]), str(SCRIPT), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def packed(fake_shared, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("pack") / "gpu_data"
    _script("--tiny", "--pack", str(dest), "--data-root", str(fake_shared / "data"), cwd=dest.parent)
    return dest


def test_pack_copies_the_capped_examples_and_the_tokenizer(packed):
    for name in STAND_INS:
        folder = packed / "data" / "eraser" / name
        counts = {split: len((folder / f"{split}.jsonl").read_text().splitlines()) for split in ("train", "val", "test")}
        assert counts == {"train": 3, "val": 2, "test": 2}  # the tiny scale's caps
        assert len(list((folder / "docs").iterdir())) == 7  # one document per example
    assert sorted(p.name for p in (packed / "models" / "gpt2-tokenizer").iterdir()) == ["merges.txt", "vocab.json"]


def _check_result(result: dict, *, world: int, methods: list[str]) -> None:
    assert result["status"] == "complete" and result["stopped_before"] is None
    assert result["mode"] == "tiny" and result["benchmark"] == "gpu_paper"
    assert set(result["seconds"]) == {"setup", "training", "generation", "cci", "eval", "other"}
    assert result["seconds"]["training"] > 0 and result["seconds"]["generation"] > 0 and result["seconds"]["cci"] > 0
    assert result["tokens"]["training"] > 0 and result["tokens_per_second"]["training"] > 0
    assert result["training_tflops_per_second"] > 0
    assert result["device"] == {**result["device"], "name": "cpu", "world_size": world, "precision": "no"}
    assert [m["kind"] for m in result["peak_memory"]] == ["peak resident set (ru_maxrss)"] * world
    assert all(m["bytes"] > 0 for m in result["peak_memory"])
    assert result["environment"]["versions"]["torch"]
    assert result["model"]["parameters"] > 0
    assert {name: result["data"][name] for name in STAND_INS} == {name: {"train": 3, "val": 2, "test": 2}
                                                                 for name in STAND_INS}
    assert result["config"]["methods"] == methods and result["config"]["orders"] == [list(STAND_INS)]
    assert result["scale"]["epochs"] == 1 and result["scale"]["model"]["n_layer"] == 2
    assert [r["method"] for r in result["runs"]] == methods
    for run in result["runs"]:
        assert run["complete"] and len(run["score_matrix"]) == 3 and all(len(row) == 3 for row in run["score_matrix"])
        assert set(run["metrics"]) == {"acc", "bwt", "fwt", "forgetting"}
    rational = next(r for r in result["runs"] if r["method"] == "rational-block")
    assert rational["seconds"]["cci"] > 0 and rational["seconds"]["training"] > 0


def test_tiny_run_writes_the_json(packed, tmp_path):
    methods = ["lamol", "rational-block"]
    out = tmp_path / "result.json"
    proc = _script("--tiny", "--data-root", str(packed / "data"), "--methods", ",".join(methods),
                   "--out", str(tmp_path / "run"), "--json", str(out), cwd=tmp_path)
    assert f"wrote {out}" in proc.stdout
    _check_result(json.loads(out.read_text()), world=1, methods=methods)
    assert (tmp_path / "run" / "results.json").is_file()  # the run dir is a normal one


def test_a_budget_stops_between_stages_and_keeps_what_finished(packed, tmp_path):
    out = tmp_path / "result.json"
    _script("--tiny", "--data-root", str(packed / "data"), "--methods", "finetune,lamol", "--budget", "0",
            "--out", str(tmp_path / "run"), "--json", str(out), cwd=tmp_path)
    result = json.loads(out.read_text())
    assert result["status"] == "stopped at the budget" and result["runs"] == []
    assert result["stopped_before"] == {"method": "finetune", "seed": 0, "order": list(STAND_INS), "stage": 1}


def test_pack_of_the_real_data_is_small(shared_data, tmp_path):
    if not (shared_data.parent / "models" / "gpt2-tokenizer" / "vocab.json").is_file():
        pytest.skip("no GPT-2 tokenizer in ../shared/models")
    dest = tmp_path / "gpu_data"
    _script("--tiny", "--pack", str(dest), "--data-root", str(shared_data), cwd=tmp_path)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert size < 8 * 2**20
    assert (dest / "data" / "eraser" / "boolq" / "train.jsonl").read_text().count("\n") == 3


@pytest.mark.slow
def test_two_processes_write_one_json(packed, tmp_path, two_cpu_processes):
    launch, env = two_cpu_processes
    methods = ["lamol", "rational-block"]
    out = tmp_path / "result.json"
    _script("--tiny", "--data-root", str(packed / "data"), "--methods", ",".join(methods),
            "--out", str(tmp_path / "run"), "--json", str(out), cwd=tmp_path, launch=launch, env=env)
    _check_result(json.loads(out.read_text()), world=2, methods=methods)
