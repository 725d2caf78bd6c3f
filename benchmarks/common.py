"""Helpers every benchmark script shares: where results go, the shared data, ``--set KEY=VALUE``
overrides, the command line a result records, the reference oracles kept under ``tests/oracles``,
ERASER's published Movies scores, a timer and the synthetic rationales of the CCI benchmarks.

Scripts run as ``python benchmarks/<script>.py``, so this folder is first on ``sys.path`` and
``from common import ...`` finds this module. No script imports another script.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import torch

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"
#: ``../shared/data`` beside the repository, or ``$RATIONALE_SHARED_DATA``
SHARED_DATA = Path(os.environ.get("RATIONALE_SHARED_DATA", REPO.parent / "shared" / "data"))
ORACLES = REPO / "tests" / "oracles"

# ERASER (DeYoung et al. 2020) Table 3, Movie Reviews: performance (macro F1), IOU F1, token F1.
ERASER_TABLE3_MOVIES = {
    "Lei et al. (2016), labels only": {"macro_f1": 0.920, "iou_f1": 0.012, "token_f1": 0.322},
    "Lei et al. (2016), with rationale supervision": {"macro_f1": 0.914, "iou_f1": 0.124, "token_f1": 0.285},
}


def result_path(benchmark: str, name: str) -> Path:
    """``benchmarks/results/<benchmark>/<name>.json``: one folder per benchmark."""
    return RESULTS / benchmark / f"{name}.json"


def write_result(path: Path, result: dict) -> None:
    """A benchmark's JSON (its folder made when missing), and a line saying where it went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path} ({result.get('total_seconds', '?')} s)")


def command_line() -> str:
    """The command that is running, as a user would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(REPO))
    except ValueError:
        script_text = sys.argv[0]
    return shlex.join(["python", script_text, *sys.argv[1:]])


def config_and_out(doc: str, argv: list[str] | None):
    """``--config`` (a file or a built-in config's name, loaded and validated) and ``--out`` (None:
    the script's default) of a benchmark that reads one experiment config and trains nothing."""
    from rational_lamol.config import load_config

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", required=True, help="a config file, or a built-in config's name")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    return load_config(args.config), args.out


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with a JSON value (``2``, ``true``, ``"x"``), else the raw string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def format_overrides(pairs: list[tuple[str, object]], flag: str = "--set") -> str:
    """The ``--set`` options that :func:`parse_override` reads back, for a result's command line."""
    return "".join(f" {flag} {key}={json.dumps(value)}" for key, value in pairs)


def load_oracle(name: str) -> ModuleType:
    """A reference implementation from ``tests/oracles/<name>.py``: one copy, shared with the tests."""
    module_name = f"oracles.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ORACLES / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no oracle {name!r} in {ORACLES}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # NamedTuples and dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the wall-clock seconds it took."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def rationale_spans(D: int, rng: np.random.Generator) -> torch.Tensor:
    """A synthetic rationale over D document tokens: three spans of 7 % each, a ``(D,)`` bool tensor."""
    import torch

    gt = torch.zeros(D, dtype=torch.bool)
    for _ in range(3):
        length = max(1, int(D * 0.07))
        start = int(rng.integers(0, D - length + 1))
        gt[start : start + length] = True
    return gt


def matmul_rate(n: int = 768, m: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of a float32 ``(m, n) @ (n, 4n)`` product, the shape of a GPT-2 MLP's first matmul."""
    import torch

    a, b = torch.randn(m, n), torch.randn(n, 4 * n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * m * n * 4 * n * repeats / (time.perf_counter() - start)


def gpt2_pair(n_layer: int, n_head: int, n_embd: int, vocab: int, n_positions: int, seed: int):
    """A random GPT-2 (eager attention) and a copy with every weight perturbed by 50 % of its std."""
    import copy

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab,
                        n_positions=n_positions, bos_token_id=0, eos_token_id=0,
                        attn_implementation="eager")
    old = GPT2LMHeadModel(config).eval()
    new = copy.deepcopy(old)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5 * p.std().clamp(min=1e-3))
    return old, new


def speed_environment(load_at_start: list[float]) -> dict:
    """Where a speed measurement ran: CPU count, platform, torch and its thread count, and the load
    average when it started (``load_at_start``, read before timing) and now."""
    import platform

    import torch

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg())}
