"""Test-wide fixtures: the real data beside the repository, skipped when absent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RATIONALE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# Tests run on CPU with few threads: the suite must stay fast on 2 cores.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:  # one thread per test process: small ops are far slower with 2 threads on 2 busy cores
    import torch

    torch.set_num_threads(1)
except ImportError:
    pass


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that take this fixture skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@contextmanager
def _lock_held_by_another_process(run_dir: Path) -> Iterator[None]:
    """``run_dir`` locked (``lock_run_dir``) by a separate Python process for the block's duration."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom rationale_commons.runtime import lock_run_dir\n"
         f"with lock_run_dir({str(run_dir)!r}):\n    print('held', flush=True)\n    sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.communicate("")


@pytest.fixture
def locked_by_another_process() -> Callable[[Path], AbstractContextManager[None]]:
    """``with locked_by_another_process(run_dir): ...`` runs the block while another process holds the lock."""
    return _lock_held_by_another_process
