"""Common random numbers: every random draw of a run comes from a stream named by what it is for.

A stream's seed is a hash of (run seed, the tasks learned so far, purpose), so

- every method sees the same batches, dropout masks and pseudo-samples at a stage: ``lamol``, the
  rational methods and their random controls differ only in what they freeze;
- the probe of a rational method draws from its own stream (``"probe"``), so the retrain that
  follows draws exactly what ``lamol`` draws;
- two task orders with the same prefix have the same history up to it (the task-1 model is
  shared between orders that start with the same task);
- nothing depends on what ran before in the process (resume, method order, thread of CCI).

Purposes used by the engine: ``"train"`` (a stage's batches and dropout), ``"probe"``,
``"replay"`` (pseudo-sample generation), ``"control"`` (a random control's draw) and ``"ties"``
(CCI's tie-break between components with equal votes and equal mean scores).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

#: bumped when the derivation changes, so cached task-1 models of older runs are not reused
STREAMS_VERSION = 2


def stream_seed(seed: int, tasks: Sequence[str], purpose: str) -> int:
    """A 63-bit seed for ``purpose`` after learning ``tasks`` (in order) from run seed ``seed``."""
    key = json.dumps([STREAMS_VERSION, int(seed), list(tasks), purpose])
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


@contextmanager
def random_stream(seed: int) -> Iterator[None]:
    """Run the block with torch's global generators (CPU and every GPU) seeded from ``seed``; the
    previous state of the CPU's and the current GPU's is restored afterwards, so the block neither
    depends on nor disturbs the draws around it.

    Only the current GPU's state is saved: under ``accelerate launch`` each process draws on its
    own GPU, and reading every visible GPU's state would open a CUDA context on each of them in
    every process."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
