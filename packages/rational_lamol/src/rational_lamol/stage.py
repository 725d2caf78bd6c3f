"""What a method sees of one stage: plain data, no pipeline.

:class:`Resources` are the experiment's read-only inputs (tokenizer, special ids, tasks, device,
the rationales CCI reads); :class:`Stage` says which stage of which run this is. Both are built by
the pipeline; a method only reads them (and writes its own files under ``run_dir``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rational_lamol.config import TrainingConfig
from rational_lamol.streams import stream_seed
from rational_lamol.tasks import SpecialIds, TaskData, TrainSequence
from rationale_commons.records import Example
from rationale_commons.runtime import path_inside, write_json_atomic

#: ``(task, split[, source]) -> (examples with the rationales CCI reads, where they came from)``;
#: ``source`` ("human" / "invrat") overrides the task's own
RationaleLookup = Callable[..., tuple[list[Example], dict[str, Any]]]


@dataclass(frozen=True)
class Resources:
    """The experiment's inputs every stage shares."""

    tokenizer: Any
    ids: SpecialIds
    tasks: dict[str, TaskData]
    accelerator: Any
    max_length: int
    sequences: Callable[[str, str], list[TrainSequence]]  # (task, split) -> encoded sequences (cached)
    rationales: RationaleLookup


@dataclass(frozen=True)
class Stage:
    """Stage ``index`` (0-based) of the run (``seed``, ``order``) of one method."""

    seed: int
    order: tuple[str, ...]
    index: int
    task_names: tuple[str, ...]  # learned at this stage (one task; every task for multitask)
    training: TrainingConfig
    run_dir: Path  # this run's dir (a method may write JSON here, e.g. cci.json)
    stage_dir: Path  # <i>_<task>/
    resources: Resources

    # -- shortcuts to the shared inputs ----------------------------------------------------------
    @property
    def tokenizer(self):
        return self.resources.tokenizer

    @property
    def ids(self) -> SpecialIds:
        return self.resources.ids

    @property
    def tasks(self) -> dict[str, TaskData]:
        return self.resources.tasks

    @property
    def accelerator(self):
        return self.resources.accelerator

    @property
    def max_length(self) -> int:
        return self.resources.max_length

    # -- derived -----------------------------------------------------------------------------
    @property
    def previous_tasks(self) -> list[str]:
        return list(self.order[: self.index])

    @property
    def learned_tasks(self) -> list[str]:
        """The tasks learned once this stage is done, in order (the random streams' key)."""
        return [*self.order[: self.index], *self.task_names]

    def seed_for(self, purpose: str) -> int:
        """The seed of this stage's random stream for ``purpose`` (:mod:`rational_lamol.streams`)."""
        return stream_seed(self.seed, self.learned_tasks, purpose)

    def train_sequences(self) -> list[TrainSequence]:
        return [seq for name in self.task_names for seq in self.resources.sequences(name, "train")]

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``name`` in the run dir (main process only)."""
        path = path_inside(self.run_dir, name)
        if self.accelerator.is_main_process:
            write_json_atomic(path, data)
        return path
