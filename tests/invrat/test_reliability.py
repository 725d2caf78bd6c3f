"""`invrat` against hostile files and faults: data-only checkpoints, one-line errors naming the
file, the run-dir lock, a full disk, and dev sets too small to select a model by."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import invrat.run_dir as run_dir_module
from invrat.cli import app
from rationale_commons.eraser_io import write_eraser
from rationale_commons.synthetic import make_task

TINY = """
hidden_dim = 6
embedding_dim = 6
epochs = 2
warmup_epochs = 1
restarts = 1
batch_size = 16
progress = false
num_threads = 1
"""


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reliability")
    data = write_eraser(make_task("sentiment", seed=0, n_train=24, n_val=10, n_test=6, doc_words=(8, 10)), root / "data")
    config = root / "tiny.toml"
    config.write_text(TINY, encoding="utf-8")
    code, _, err = invoke("train", data, "--out", root / "run", "--config", config)
    assert code == 0, err
    return {"root": root, "data": data, "config": config, "run": root / "run"}


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def one_line_error(*args: object) -> str:
    code, _, err = invoke(*args)
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("invrat: error:"), (code, err)
    return lines[0]


def copy_run(tiny: dict[str, Path], name: str) -> Path:
    import shutil

    run = tiny["root"] / name
    shutil.copytree(tiny["run"], run)
    (run / "DONE").unlink()  # a killed run: --resume reads its checkpoint
    return run


def resume_error(tiny: dict[str, Path], run: Path) -> str:
    return one_line_error("train", tiny["data"], "--out", run, "--config", tiny["config"], "--resume")


def test_resume_refuses_a_checkpoint_that_would_run_code(tiny: dict[str, Path]) -> None:
    run = copy_run(tiny, "hostile")
    marker = tiny["root"] / "pwned"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**state, "best": _RunsCode(marker)}, run / "checkpoint.pt")
    assert "checkpoint.pt: cannot load (refused" in resume_error(tiny, run)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["checkpoint.pt", "config.json", "envs.json"])
def test_a_corrupt_run_file_is_one_line_naming_it(tiny: dict[str, Path], name: str) -> None:
    run = copy_run(tiny, f"corrupt-{name}")
    (run / name).write_bytes(b"\x00\x01 not what it should be")
    assert name in resume_error(tiny, run)


def test_resume_rebuilds_a_corrupt_metrics_json_from_the_checkpoint(tiny: dict[str, Path]) -> None:
    run = copy_run(tiny, "corrupt-metrics")
    (run / "metrics.json").write_text("[{", encoding="utf-8")
    code, _, err = invoke("train", tiny["data"], "--out", run, "--config", tiny["config"], "--resume")
    assert code == 0, err
    assert json.loads((run / "metrics.json").read_text()) == json.loads((tiny["run"] / "metrics.json").read_text())


def test_rationalize_with_a_corrupt_model_is_one_line_naming_it(tiny: dict[str, Path]) -> None:
    run = copy_run(tiny, "corrupt-model")
    (run / "model.safetensors").write_bytes(b"{not safetensors")
    line = one_line_error("rationalize", run, tiny["data"], "--out", tiny["root"] / "x.jsonl")
    assert "model.safetensors" in line


def test_output_errors_are_one_line_and_lose_nothing(tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tiny["root"] / "a-folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine", encoding="utf-8")
    one_line_error("rationalize", tiny["run"], tiny["data"], "--out", folder)  # the output path is a folder
    assert (folder / "keep.txt").read_text() == "mine"

    import tempfile

    def read_only(*args, **kwargs):  # what a read-only output dir answers (root ignores chmod)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert "Permission denied" in one_line_error("rationalize", tiny["run"], tiny["data"], "--out", folder / "r.jsonl")


def test_an_unreadable_data_file_is_one_line(tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    table = tiny["root"] / "rows.jsonl"
    table.write_text('{"text": "good movie", "label": "pos"}\n', encoding="utf-8")
    real_open = Path.open

    def unreadable(self: Path, *args, **kwargs):
        if self == table:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", unreadable)
    line = one_line_error("train", table, "--out", tiny["root"] / "unreadable", "--config", tiny["config"])
    assert "rows.jsonl" in line and "Permission denied" in line


def test_a_full_disk_mid_checkpoint_loses_nothing_and_resumes(tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tiny["root"] / "full-disk"
    real_save, calls = torch.save, {"n": 0}

    def fills_the_disk(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's checkpoint: half written, then ENOSPC
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(run_dir_module.torch, "save", fills_the_disk)
    assert "checkpoint.pt: No space left on device" in one_line_error("train", tiny["data"], "--out", out, "--config", tiny["config"])
    monkeypatch.setattr(run_dir_module.torch, "save", real_save)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 0  # the first epoch is intact
    assert not list(out.glob(".*.tmp-*"))
    code, _, err = invoke("train", tiny["data"], "--out", out, "--config", tiny["config"], "--resume")
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())[-1]["dev_acc"] == \
        json.loads((tiny["run"] / "metrics.json").read_text())[-1]["dev_acc"]


def test_a_second_train_on_a_locked_run_dir_is_refused(tiny: dict[str, Path], locked_by_another_process) -> None:
    out = tiny["root"] / "locked"
    with locked_by_another_process(out):
        line = one_line_error("train", tiny["data"], "--out", out, "--config", tiny["config"], "--resume")
        assert "in use by another running process" in line
    assert [p.name for p in out.iterdir()] == [".lock"]  # the refused process wrote nothing


def test_a_one_line_dataset_is_refused_and_a_small_dev_set_warned(tiny: dict[str, Path], caplog) -> None:
    one = tiny["root"] / "one.jsonl"
    one.write_text('{"text": "good movie", "label": "pos"}\n', encoding="utf-8")
    line = one_line_error("train", one, "--out", tiny["root"] / "one-run", "--config", tiny["config"])
    assert "held-out" in line
    few = tiny["root"] / "few.jsonl"
    few.write_text("".join(json.dumps({"text": f"w{i} good" if i % 2 else f"w{i} bad", "label": "pos" if i % 2 else "neg"})
                           + "\n" for i in range(12)), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="invrat"):
        code, _, err = invoke("train", few, "--out", tiny["root"] / "few-run", "--config", tiny["config"])
    assert code == 0, err
    assert any("dev set has 1 example(s)" in r.getMessage() for r in caplog.records)


def test_a_checkpoint_from_before_it_held_the_records_cuts_metrics_at_its_epoch(tmp_path: Path) -> None:
    records = [{"restart": 0, "epoch": e, "dev_acc": e / 10} for e in range(3)]
    (tmp_path / "metrics.json").write_text(json.dumps(records), encoding="utf-8")
    # killed after metrics.json had epoch 2 but before checkpoint.pt did: epoch 2 is redone, recorded once
    assert run_dir_module.metrics_at_checkpoint(tmp_path, {"restart": 0, "epoch": 1}) == records[:2]
    assert run_dir_module.metrics_at_checkpoint(tmp_path, {"restart": 0, "epoch": 1, "metrics": records[:1]}) == records[:1]
