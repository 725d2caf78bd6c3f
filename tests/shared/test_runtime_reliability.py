"""The run-dir helpers of rationale_commons.runtime: atomic folders, data-only loading, the lock."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from rationale_commons.errors import DataError, os_error_line
from rationale_commons.runtime import (
    atomic_dir,
    check_path_component,
    is_complete,
    load_safetensors,
    load_tensors,
    lock_run_dir,
    path_inside,
    read_json,
    run_dir_is_fresh,
    write_json_atomic,
)


class _RunsCode:
    """Unpickling this runs ``os.system``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"epoch": 0, "payload": _RunsCode(marker)}, path)
    return path


def test_a_pickle_that_runs_code_is_refused_and_the_code_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = hostile_checkpoint(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(DataError, match=r"checkpoint\.pt: cannot load \(refused"):
        load_tensors(ckpt)
    assert not marker.exists()
    torch.load(ckpt, weights_only=False)  # the file is really hostile: a full unpickle runs it
    assert marker.exists()


def test_plain_data_and_tensors_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.pt"
    torch.save({"t": torch.arange(3), "rng": torch.get_rng_state(), "records": [{"a": 1.5, "b": None}]}, path)
    assert load_tensors(path)["records"] == [{"a": 1.5, "b": None}]


@pytest.mark.parametrize("content", [b"", b"\x00garbage", b"PK\x03\x04 not a zip"])
def test_corrupt_files_are_one_error_naming_them(tmp_path: Path, content: bytes) -> None:
    for name, load in (("checkpoint.pt", load_tensors), ("model.safetensors", load_safetensors),
                       ("metrics.json", read_json)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=name) as info:
            load(tmp_path / name)
        assert "\n" not in str(info.value)


def test_atomic_dir_leaves_the_old_folder_on_error_and_replaces_it_on_success(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v1")
    assert is_complete(target) and (target / "weights").read_text() == "v1"
    with pytest.raises(OSError), atomic_dir(target) as tmp:
        (tmp / "weights").write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert (target / "weights").read_text() == "v1"  # nothing written before is lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left
    (tmp_path / ".model.tmp-99999").mkdir()  # what a killed save leaves
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_write_json_atomic_on_a_full_disk_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, [1])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(json, "dump", full)
    with pytest.raises(OSError) as info:
        write_json_atomic(path, [1, 2])
    assert os_error_line(info.value) == f"{path}: No space left on device"
    assert json.loads(path.read_text()) == [1] and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_second_process_cannot_lock_a_locked_run_dir(tmp_path: Path, locked_by_another_process) -> None:
    run_dir = tmp_path / "run"
    with locked_by_another_process(run_dir):
        with pytest.raises(DataError, match="in use by another running process"), lock_run_dir(run_dir):
            pass
    with lock_run_dir(run_dir):  # released when the holder ended
        assert run_dir_is_fresh(run_dir)  # the lock file alone is no run


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", " x", "x\n"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(DataError, match="not a safe folder name"):
        check_path_component(name, what="task name")


def test_path_inside(tmp_path: Path) -> None:
    assert path_inside(tmp_path, "a", "b") == tmp_path / "a" / "b"
    with pytest.raises(DataError, match="outside the run dir"):
        path_inside(tmp_path, "..", "x")
