"""Rational LAMOL (Kanwatchara et al., ACL-IJCNLP 2021 §3): critical freezing between tasks.

Methods ``rational-block`` and ``rational-head``. Task 1 is learned exactly as LAMOL learns it
(the pipeline shares that model). For every later task t+1, given ``M_t`` (the model the stage starts from), the four
steps of docs/algorithms.md §2:

1. **probe**: a deep copy of ``M_t`` learns task t+1 the LAMOL way (task data + pseudo-samples);
2. **CCI**: :func:`rational_lamol.cci.identify_critical_components` compares ``M_t`` (old) with the
   probe (new) on rationale-annotated examples of task t (``split``, at most ``n_examples``);
   the probe is then thrown away;
3. **freeze** the chosen block (or the ``top_k`` most voted heads) — together with everything
   chosen at earlier transitions when ``accumulate`` is on (the reference code chose once and
   reused that choice; choosing anew and keeping earlier freezes is the natural reading);
4. **retrain** task t+1 from ``M_t`` (not from the probe) with the freeze in place, on the same
   pseudo-samples as the probe (generated once per stage, before either trains).

Frozen means bit-identical (:class:`rational_lamol.freezing.Freezer` as a training callback). The
freeze is released after the stage, so the next probe may change those weights again; with
``accumulate`` they are frozen again for the next retrain.

``cci.json`` in the run's dir is a list with one entry per transition::

    {"from_task", "to_task", "level", "chosen", "frozen", "votes", "n_used", "n_skipped",
     "scores_mean", "param_counts", "beta", "row_filter", "top_k", "rationale_source", ...}

With the option ``compare_with``, ``"comparison"`` adds what CCI would have chosen from the other
rationale source (human or InvRat) on the same examples and models, and how far the two agree.

``frozen`` is everything frozen while training ``to_task`` (earlier freezes included), in the
shape of ``chosen`` (``[block, ...]`` or ``[[block, head], ...]``). A resumed run reads the freeze
history back from ``cci.json``.
"""

from __future__ import annotations

import copy
import gc
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rational_lamol.cci import CCIResult, RowFilter, identify_critical_components
from rational_lamol.cci_inputs import cci_batches, cci_items
from rational_lamol.freezing import Freezer, FreezeSpec
from rational_lamol.methods import LamolMethod, Learned
from rational_lamol.stage import Stage
from rational_lamol.tasks import TrainSequence
from rational_lamol.trainer import TrainingCallback, schedule_steps, steps_for_share
from rationale_commons.runtime import read_json

log = logging.getLogger("rational_lamol")

CCI_FILE = "cci.json"

Level = Literal["block", "head"]


def spec_to_components(spec: FreezeSpec, level: str) -> list[Any]:
    """A freeze spec in ``cci.json``'s shape: ``[block, ...]`` or ``[[block, head], ...]``."""
    return list(spec.blocks) if level == "block" else [[b, h] for b, h in spec.heads]


def components_to_spec(components: Sequence[Any], level: str) -> FreezeSpec:
    if level == "block":
        return FreezeSpec(blocks=[int(b) for b in components])
    return FreezeSpec(heads=[(int(b), int(h)) for b, h in components])


class FreezingMethod(LamolMethod):
    """LAMOL with components frozen while learning every task after the first. Subclasses say
    what to freeze (:meth:`choose`); this class retrains from ``M_t`` with the freeze in place
    (on the same batches and pseudo-samples as ``lamol``: :mod:`rational_lamol.streams`) and
    records the transition in ``cci.json``."""

    level: Level = "block"

    # -- the freeze history (survives a restart through cci.json) ---------------------------------
    def history(self, stage: Stage) -> list[dict[str, Any]]:
        """``cci.json`` entries of the transitions before this stage (a resumed stage is redone)."""
        path = stage.run_dir / CCI_FILE
        if not path.is_file():
            return []
        earlier = set(stage.order[1 : stage.index])
        return [e for e in read_json(path) if e.get("to_task") in earlier]

    def frozen_before(self, history: Sequence[dict[str, Any]]) -> FreezeSpec:
        """Everything chosen at earlier transitions (what the retrain keeps frozen)."""
        spec = FreezeSpec()
        for entry in history:
            spec = spec.merged(components_to_spec(entry["chosen"], self.level))
        return spec

    def choose(self, stage: Stage, model, replayed: list[TrainSequence], earlier: FreezeSpec, *,
               callbacks: Sequence[TrainingCallback]) -> tuple[FreezeSpec, FreezeSpec, dict[str, Any]]:
        """``(chosen, frozen, record)`` for this transition: the new components, everything frozen
        while retraining, and what ``cci.json`` says about the choice (``record["stats"]``, when
        present, goes to the stage's statistics instead)."""
        raise NotImplementedError

    # -- one stage --------------------------------------------------------------------------------
    def learn(self, stage: Stage, model, *, callbacks: Sequence[TrainingCallback] = ()) -> Learned:
        if stage.index == 0:
            return super().learn(stage, model, callbacks=callbacks)
        replayed, replay_stats = self.replay(stage, model)  # once: the probe and the retrain share it
        history = self.history(stage)
        chosen, frozen, record = self.choose(stage, model, replayed, self.frozen_before(history),
                                             callbacks=callbacks)
        extra_stats = record.pop("stats", {})

        # retrain from M_t (untouched by any probe) with the freeze in place
        freezer = Freezer(model, frozen)
        try:
            train_stats = self.fit(stage, model, [*stage.train_sequences(), *replayed],
                                   callbacks=[*callbacks, freezer])
            counts = freezer.parameter_report(model)
        finally:
            freezer.release()
        _log_counts(self.name, counts)

        entry = {
            "from_task": stage.order[stage.index - 1],
            "to_task": stage.task_names[0],
            "level": self.level,
            "chosen": spec_to_components(chosen, self.level),
            "frozen": spec_to_components(frozen, self.level),
            **record,
            "param_counts": counts,
        }
        stage.write_json(CCI_FILE, [*history, entry])
        summary = {k: entry[k] for k in ("chosen", "frozen", "n_used", "n_skipped", "n_tied") if k in entry}
        return Learned(model, {"train": [train_stats], **replay_stats, "cci": summary,
                               "frozen_parameters": counts["total"], **extra_stats})


class RationalOptions(BaseModel):
    """``[method_options.rational-block]`` / ``[method_options.rational-head]``."""

    model_config = ConfigDict(extra="forbid")

    level: Level | None = Field(None, description="set by the method's name; may not contradict it")
    top_k: int = Field(12, ge=1, description="head level: heads each example votes for, and heads chosen")
    beta: float = Field(20.0, gt=0, le=100, description="P_beta keeps the top beta % of an attention row")
    n_examples: int = Field(200, ge=1, description="examples of the previous task CCI reads (the first n)")
    split: Literal["train", "val", "test"] = Field("val", description="the split those examples come from")
    accumulate: bool = Field(True, description="keep the components chosen at earlier transitions frozen")
    row_filter: RowFilter = Field("all", description="attention rows CCI reads (docs/algorithms.md §2)")
    cci_batch_size: int = Field(8, ge=1, description="examples per CCI forward pass")
    probe_share: float = Field(
        1.0, gt=0, le=1,
        description=(
            "share of the task's training steps the probe takes (a cheap probe: the full probe's schedule "
            "stopped early, so it is the first part of the full probe's trajectory)"
        ),
    )
    probe_curve: list[float] = Field(
        default_factory=list,
        description=(
            "also run CCI at these shares of the probe's steps and record each choice and its agreement "
            "with the probe's final choice in cci.json (measures how cheap a probe may be; changes nothing else)"
        ),
    )
    compare_with: Literal["human", "invrat"] | None = Field(
        None,
        description=(
            "also run CCI from this rationale source on the same examples, models and probe, and record "
            "its choice and the agreement in cci.json (what is frozen still follows the task's own source)"
        ),
    )


class RationalMethod(FreezingMethod):
    """LAMOL plus rationale-guided critical freezing (probe → CCI → freeze → retrain)."""

    Options = RationalOptions

    def __init__(self, options: RationalOptions | None = None) -> None:
        super().__init__(options)
        if self.options.level not in (None, self.level):
            raise ValueError(f"method {self.name!r} works at level {self.level!r}, not {self.options.level!r}")
        self.options = self.options.model_copy(update={"level": self.level})

    def frozen_before(self, history: Sequence[dict[str, Any]]) -> FreezeSpec:
        return super().frozen_before(history) if self.options.accumulate else FreezeSpec()

    def choose(self, stage: Stage, model, replayed: list[TrainSequence], earlier: FreezeSpec, *,
               callbacks: Sequence[TrainingCallback]) -> tuple[FreezeSpec, FreezeSpec, dict[str, Any]]:
        o = self.options
        prev_task, task = stage.order[stage.index - 1], stage.task_names[0]

        # 1. probe: a copy of M_t learns the task the LAMOL way, from its own random stream
        log.info("  [%s] probe: learning %s from a copy of the model", self.name, task)
        probe = copy.deepcopy(model)
        sequences = [*stage.train_sequences(), *replayed]
        total = schedule_steps(len(sequences), stage.training, stage.accelerator.num_processes)
        curve = ProbeCurve(lambda probe_now: self.identify(stage, model, probe_now, prev_task)[0],
                           {share: steps_for_share(share, total) for share in o.probe_curve})
        probe_stats = self.fit(stage, probe, sequences, stream="probe", callbacks=[*callbacks, curve],
                               step_share=o.probe_share)

        # 2. CCI on the previous task's rationale-annotated examples
        started = time.perf_counter()
        result, source = self.identify(stage, model, probe, prev_task)
        cci_seconds = time.perf_counter() - started
        comparison = None
        if o.compare_with and o.compare_with != source["source"]:
            other, other_source = self.identify(stage, model, probe, prev_task, o.compare_with)
            comparison = {"rationale_source": other_source, "chosen": spec_to_components(FreezeSpec.from_cci(other), self.level),
                          "votes": other.votes, "n_used": other.n_used, "n_tied": other.n_tied,
                          **choice_agreement(FreezeSpec.from_cci(result), FreezeSpec.from_cci(other), self.level)}
            log.info("  [%s] CCI from %s rationales would choose %s (overlap %d of %d)", self.name, o.compare_with,
                     comparison["chosen"], comparison["overlap"], comparison["size"])
        del probe
        gc.collect()

        # 3. freeze what CCI chose (plus the earlier choices when accumulating)
        chosen = FreezeSpec.from_cci(result)
        log.info("  [%s] CCI %s -> %s: chose %s (votes %s; %d used, %d skipped, %d with tied scores)", self.name,
                 prev_task, task, spec_to_components(chosen, self.level), result.votes, result.n_used,
                 result.n_skipped, result.n_tied)
        if chosen.is_empty():
            log.warning("  [%s] no example could vote (empty rationales in the window): nothing new frozen",
                        self.name)
        record = {
            "votes": result.votes,
            "n_used": result.n_used,
            "n_skipped": result.n_skipped,
            "n_without_rationale": result.n_without_rationale,
            "n_tied": result.n_tied,
            "scores_mean": result.scores_mean,
            "beta": result.beta,
            "row_filter": result.row_filter,
            "top_k": result.top_k,
            "accumulate": o.accumulate,
            "split": o.split,
            "rationale_source": source,
            "ties": result.ties,
            **({"comparison": comparison} if comparison else {}),
            "probe": {"share": o.probe_share, "steps": probe_stats["steps"], "schedule_steps": total},
            **({"probe_curve": curve.record(chosen, self.level)} if o.probe_curve else {}),
            # wall-clock (timing.json): the probe's seconds include the curve's CCI passes
            "stats": {"probe_train": probe_stats, "cci_seconds": round(cci_seconds, 3),
                      **({"probe_curve": {"seconds": round(curve.seconds, 3)}} if o.probe_curve else {})},
        }
        return chosen, earlier.merged(chosen), record

    def identify(self, stage: Stage, model, probe, task: str, source: str | None = None) -> tuple[CCIResult, dict[str, Any]]:
        """CCI of ``model`` (old) against ``probe`` (new) on ``task``'s first ``n_examples`` of the
        split, with the rationales of ``source`` (default: the task's own), and where they came from."""
        o = self.options
        examples, info = stage.resources.rationales(task, o.split, source)
        items, no_rationale = cci_items(stage.tasks[task], examples[: o.n_examples], stage.tokenizer, stage.max_length)
        result = identify_critical_components(
            model, probe,
            cci_batches(items, batch_size=o.cci_batch_size, pad_token_id=stage.ids.pad, device=stage.accelerator.device),
            level=self.level, top_k=o.top_k, beta=o.beta, row_filter=o.row_filter, tie_seed=stage.seed_for("ties"),
            n_without_rationale=no_rationale,
        )
        if stage.accelerator.num_processes > 1:  # every process freezes what the main process chose
            from accelerate.utils import broadcast_object_list

            result = broadcast_object_list([result])[0]
        return result, info


class ProbeCurve:
    """A probe's training callback: CCI at chosen step counts of the probe (``identify(probe)``
    gives the choice), to compare cheaper probes with the full one on the same trajectory. CCI runs
    without gradients and draws no random numbers, so the probe trains exactly as without it."""

    def __init__(self, identify, steps: dict[float, int]) -> None:
        self.identify, self.steps, self.step, self.seconds = identify, steps, 0, 0.0
        self.choices: dict[float, FreezeSpec] = {}

    def on_train_start(self, model) -> None:
        pass

    def on_after_optimizer_step(self, model) -> None:
        self.step += 1
        for share, at in self.steps.items():
            if at == self.step:
                started = time.perf_counter()
                self.choices[share] = FreezeSpec.from_cci(self.identify(model))
                self.seconds += time.perf_counter() - started

    def record(self, final: FreezeSpec, level: str) -> list[dict[str, Any]]:
        """One entry per share reached: the choice there and its agreement with ``final``."""
        return [{"share": share, "steps": self.steps[share], "chosen": spec_to_components(spec, level),
                 **choice_agreement(final, spec, level)} for share, spec in sorted(self.choices.items())]


def choice_agreement(a: FreezeSpec, b: FreezeSpec, level: str) -> dict[str, Any]:
    """How far two CCI choices agree: components in common (``overlap``) out of the first's
    ``size``, and their Jaccard index (1.0 for two empty choices)."""
    first, second = (set(x.heads) if level == "head" else set(x.blocks) for x in (a, b))
    union = first | second
    return {"size": len(first), "overlap": len(first & second),
            "jaccard": round(len(first & second) / len(union), 4) if union else 1.0, "same": first == second}


def chance_agreement(n_components: int, size: int, other_size: int) -> dict[str, float]:
    """What :func:`choice_agreement` expects when the other choice is ``other_size`` of the
    ``n_components`` drawn uniformly at random: the shared count is hypergeometric, so the expected
    overlap share is ``other_size / n_components``; the Jaccard index and the chance of the very same
    set are its exact expectations."""
    if not 0 <= size <= n_components or not 0 <= other_size <= n_components:
        raise ValueError(f"choices of {size} and {other_size} cannot come from {n_components} components")
    draws = math.comb(n_components, other_size)
    jaccard = 0.0
    for shared in range(max(0, size + other_size - n_components), min(size, other_size) + 1):
        union = size + other_size - shared
        p = math.comb(size, shared) * math.comb(n_components - size, other_size - shared) / draws
        jaccard += p * (shared / union if union else 1.0)
    return {"overlap": other_size / n_components if size else 1.0, "jaccard": jaccard,
            "same": 1 / draws if size == other_size else 0.0}


def _log_counts(method: str, counts: dict[str, Any]) -> None:
    per_block = ", ".join(f"b{r['block']} {r['trainable']}/{r['frozen']}" for r in counts["blocks"])
    total = counts["total"]
    log.info("  [%s] parameters trainable/frozen per block: %s; outside blocks %d/%d; total %d/%d", method,
             per_block, counts["outside_blocks"]["trainable"], counts["outside_blocks"]["frozen"],
             total["trainable"], total["frozen"])


class RationalBlockMethod(RationalMethod):
    """Rational LAMOL, block level: one block chosen per transition (the mode of the votes)."""

    name = "rational-block"
    level = "block"


class RationalHeadMethod(RationalMethod):
    """Rational LAMOL, head level: the ``top_k`` most voted (block, head) pairs per transition."""

    name = "rational-head"
    level = "head"
