"""Test-wide fixtures: the real data beside the repository, skipped when absent."""

from __future__ import annotations

import os
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
