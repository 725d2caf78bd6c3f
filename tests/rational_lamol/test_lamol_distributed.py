"""Several processes through Hugging Face Accelerate: a tiny 2-process CPU (gloo) run, started by
torch's launcher (`accelerate launch --cpu` starts one process without mpirun)."""

from __future__ import annotations

import json
import subprocess

import pytest
from tiny_configs import tiny_config_dict, write_toml

TINY = tiny_config_dict(name="tiny-ddp", methods=["lamol"], max_train=8)


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path, two_cpu_processes):
    launch, env = two_cpu_processes
    cfg = tmp_path / "tiny.toml"
    write_toml(cfg, TINY)
    out = tmp_path / "run"
    cmd = [*launch, "-m", "rational_lamol.cli", "run", "--config", str(cfg), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    (run,) = results["runs"]
    assert run["method"] == "lamol" and len(run["score_matrix"]) == 2
    assert run["environment"]["processes"] == 2
    stage2 = json.loads((out / run["dir"] / "2_topic" / "stage.json").read_text())
    # both processes sampled their share; the gathered pseudo-samples cover the request
    assert sum(stage2["pseudo"]["requested"].values()) == 4
    log = (out / "run.log").read_text()
    assert "== lamol" in log and log.count("== lamol") == 1  # only the main process logs


def test_runs_in_one_process_may_change_precision():
    """Accelerate keeps one process-wide state; a second run (a notebook, a test) with another
    precision must not be refused."""
    from rational_lamol.config import TrainingConfig
    from rational_lamol.trainer import get_accelerator

    assert get_accelerator(TrainingConfig(device="cpu", precision="fp32")).mixed_precision == "no"
    assert get_accelerator(TrainingConfig(device="cpu", precision="bf16")).mixed_precision == "bf16"


def test_auto_device_follows_a_cpu_launch(monkeypatch):
    """``accelerate launch --cpu`` sets ACCELERATE_USE_CPU: device "auto" then means CPU, fp32,
    even where a GPU is visible."""
    from rational_lamol.config import TrainingConfig
    from rational_lamol.trainer import get_accelerator

    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    accelerator = get_accelerator(TrainingConfig(device="auto", precision="auto"))
    assert accelerator.device.type == "cpu"
    assert accelerator.mixed_precision == "no"


def test_a_finished_run_ends_its_process_group(tmp_path):
    """Every process ends the group once it no longer communicates: a gloo group left to
    interpreter shutdown aborted a finished run now and then ("terminate called without an
    active exception")."""
    import torch.distributed as dist

    from rational_lamol.trainer import end_process_group

    end_process_group()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    end_process_group()
    assert not dist.is_initialized()
