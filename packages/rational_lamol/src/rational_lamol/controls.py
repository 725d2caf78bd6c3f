"""Random controls for Rational LAMOL: the same amount of freezing, chosen without rationales.

``random-block`` and ``random-head`` train exactly as ``lamol`` (same batches, pseudo-samples and
dropout: :mod:`rational_lamol.streams`) and freeze, at every transition, as many components as
their rational counterpart froze at the same transition of the same (order, seed): they read
``rational-block``'s / ``rational-head``'s ``cci.json`` beside their own run dir, so the
counterpart must be in the experiment's methods (the pipeline runs it first). The components are
drawn uniformly at random from the model's blocks (or (block, head) pairs) with a stream of their
own; the components frozen at earlier transitions are kept when the counterpart's freeze grew
(``accumulate``), so a control's freeze nests like the rational one's. The difference between a
rational method and its control is then what the rationales chose, not how much was frozen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rational_lamol.adapters import adapter_for
from rational_lamol.freezing import FreezeSpec
from rational_lamol.rational import CCI_FILE, FreezingMethod, components_to_spec, spec_to_components
from rational_lamol.stage import Stage
from rational_lamol.tasks import TrainSequence
from rational_lamol.trainer import TrainingCallback
from rationale_commons.errors import DataError
from rationale_commons.runtime import read_json

log = logging.getLogger("rational_lamol")


def all_components(n_blocks: int, n_heads: int, level: str) -> list[Any]:
    """Every block ``[b, ...]`` or every (block, head) pair ``[[b, h], ...]``, in index order."""
    if level == "block":
        return list(range(n_blocks))
    return [[b, h] for b in range(n_blocks) for h in range(n_heads)]


def matched_random_freeze(
    universe: Sequence[Any], earlier: Sequence[Any], size: int, rng: np.random.Generator
) -> list[Any]:
    """A random freeze of ``size`` components: as many of ``earlier`` as fit (a random subset when
    the freeze shrank), the rest drawn uniformly without replacement from the others."""
    if not 0 <= size <= len(universe):
        raise ValueError(f"cannot freeze {size} of {len(universe)} components")
    keep = rng.choice(len(earlier), size=min(size, len(earlier)), replace=False)
    kept = [earlier[i] for i in sorted(keep)]
    rest = [c for c in universe if c not in kept]
    drawn = [rest[i] for i in rng.choice(len(rest), size=size - len(kept), replace=False)]
    return kept + drawn


class RandomControlMethod(FreezingMethod):
    """Freeze as many components as ``requires`` (the rational counterpart) did, chosen at random."""

    requires = "rational-block"

    def frozen_before(self, history: Sequence[dict[str, Any]]) -> FreezeSpec:
        """What this control froze at the previous transition (the draw starts from it)."""
        return components_to_spec(history[-1]["frozen"], self.level) if history else FreezeSpec()

    def counterpart_entry(self, stage: Stage) -> dict[str, Any]:
        path = stage.run_dir.parent / self.requires / CCI_FILE
        prev_task, task = stage.order[stage.index - 1], stage.task_names[0]
        entries = read_json(path) if path.is_file() else []
        for entry in entries:
            if entry.get("from_task") == prev_task and entry.get("to_task") == task:
                return entry
        raise DataError(f"{self.name} freezes as many components as {self.requires}, but {path} has no "
                        f"{prev_task} -> {task} transition; run {self.requires} for this order and seed first")

    def choose(self, stage: Stage, model, replayed: list[TrainSequence], earlier: FreezeSpec, *,
               callbacks: Sequence[TrainingCallback]) -> tuple[FreezeSpec, FreezeSpec, dict[str, Any]]:
        target = self.counterpart_entry(stage)
        adapter = adapter_for(model)
        universe = all_components(adapter.n_blocks, adapter.n_heads, self.level)
        size = len(target["frozen"])
        rng = np.random.default_rng(stage.seed_for("control"))
        kept = spec_to_components(earlier, self.level)
        frozen_list = matched_random_freeze(universe, kept, size, rng)
        frozen = components_to_spec(frozen_list, self.level)
        chosen = components_to_spec([c for c in frozen_list if c not in kept], self.level)
        log.info("  [%s] froze %d component(s) at random, as %s did: %s", self.name, size, self.requires,
                 spec_to_components(frozen, self.level))
        record = {"matched_to": self.requires, "matched_frozen": target["frozen"],
                  "draw": "uniform without replacement among the components not frozen before"}
        return chosen, frozen, record


class RandomBlockMethod(RandomControlMethod):
    """Control for ``rational-block``: as many blocks frozen, chosen at random."""

    name = "random-block"
    level = "block"
    requires = "rational-block"


class RandomHeadMethod(RandomControlMethod):
    """Control for ``rational-head``: as many (block, head) pairs frozen, chosen at random."""

    name = "random-head"
    level = "head"
    requires = "rational-head"
