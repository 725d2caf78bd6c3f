"""Rational LAMOL (Kanwatchara et al., ACL-IJCNLP 2021 §3): critical freezing between tasks.

Methods ``rational-block`` and ``rational-head``. Task 1 is learned exactly as LAMOL learns it
(the pipeline shares that model). For every later task t+1, given ``M_t`` (``ctx.model``), the four
steps of docs/algorithms.md §2:

1. **probe**: a deep copy of ``M_t`` learns task t+1 the LAMOL way (task data + pseudo-samples);
2. **CCI**: :func:`rational_lamol.cci.identify_critical_components` compares ``M_t`` (old) with the
   probe (new) on rationale-annotated examples of task t (``split``, at most ``n_examples``);
   the probe is then thrown away;
3. **freeze** the chosen block (or the ``top_k`` most voted heads) — together with everything
   chosen at earlier transitions when ``accumulate`` is on (the reference code chose once and
   reused that choice; choosing anew and keeping earlier freezes is the natural reading);
4. **retrain** task t+1 from ``M_t`` (not from the probe) with the freeze in place, on the same
   pseudo-samples as the probe (``ctx.replay_sequences()`` is generated once per stage).

Frozen means bit-identical (:class:`rational_lamol.freezing.Freezer` as a training callback). The
freeze is released after the stage, so the next probe may change those weights again; with
``accumulate`` they are frozen again for the next retrain.

``cci.json`` in the run's dir is a list with one entry per transition::

    {"from_task", "to_task", "level", "chosen", "frozen", "votes", "n_used", "n_skipped",
     "scores_mean", "param_counts", "beta", "row_filter", "top_k", "rationale_source", ...}

``frozen`` is everything frozen while training ``to_task`` (earlier freezes included), in the
shape of ``chosen`` (``[block, ...]`` or ``[[block, head], ...]``). A resumed run reads the freeze
history back from ``cci.json``.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rational_lamol.cci import ROW_FILTERS, CCIResult, identify_critical_components
from rational_lamol.cci_inputs import cci_batches, cci_items
from rational_lamol.freezing import Freezer, FreezeSpec
from rational_lamol.methods import LamolMethod, register_method
from rational_lamol.rationale_sources import (
    HUMAN,
    INVRAT,
    invrat_rationales,
    rationale_samples,
    source_kind,
)
from rational_lamol.streams import stream_seed
from rational_lamol.trainer import TrainingCallback
from rationale_commons.errors import DataError
from rationale_commons.records import Example
from rationale_commons.runtime import read_json, write_json_atomic

if TYPE_CHECKING:
    from rational_lamol.pipeline import Session, TaskContext

log = logging.getLogger("rational_lamol")

CCI_FILE = "cci.json"
SAMPLES_FILE = "rationale_samples.json"

# Rationale-annotated CCI examples per (session, task): shared by every method and seed of a run.
_RATIONALE_CACHE: weakref.WeakKeyDictionary[Any, dict[str, tuple[list[Example], dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)


def spec_to_components(spec: FreezeSpec, level: str) -> list[Any]:
    """A freeze spec in ``cci.json``'s shape: ``[block, ...]`` or ``[[block, head], ...]``."""
    return list(spec.blocks) if level == "block" else [[b, h] for b, h in spec.heads]


def components_to_spec(components: Sequence[Any], level: str) -> FreezeSpec:
    if level == "block":
        return FreezeSpec(blocks=[int(b) for b in components])
    return FreezeSpec(heads=[(int(b), int(h)) for b, h in components])


def cci_rationale_examples(session: Session, task_name: str, split: str) -> tuple[list[Example], dict[str, Any]]:
    """The examples of ``task_name`` CCI reads, with the rationales of the task's source
    (human / file / InvRat), cached per session; also writes ``rationale_samples.json``."""
    cache = _RATIONALE_CACHE.setdefault(session, {})
    key = f"{task_name}:{split}"
    if key in cache:
        return cache[key]
    task = session.tasks[task_name]
    if not task.splits[split]:
        raise DataError(f"task {task_name!r} has no {split!r} examples for CCI; set the method option 'split'")
    kind = source_kind(task.config.rationales)
    main = session.accelerator.is_main_process
    if kind == INVRAT:
        invrat_options = {**(session.config.invrat or {}), **(task.config.invrat or {})}
        examples, info = invrat_rationales(task, split, session.out_dir, invrat_options,
                                           seed=session.config.data_seed, main_process=main)
        session.accelerator.wait_for_everyone()
    else:
        examples = list(task.splits[split])
        info = {"task": task_name, "source": kind if kind == HUMAN else task.config.rationales, "split": split}
    info["n_with_rationale"] = sum(ex.rationale is not None and any(ex.rationale) for ex in examples)
    cache[key] = (examples, info)
    if main:
        path = session.out_dir / SAMPLES_FILE
        samples = read_json(path) if path.is_file() else []
        samples = [s for s in samples if s.get("task") != task_name] + rationale_samples(task, examples)
        write_json_atomic(path, samples)
    return examples, info


class FreezingMethod(LamolMethod):
    """LAMOL with components frozen while learning every task after the first. Subclasses say
    what to freeze (:meth:`choose`); this class retrains from ``M_t`` with the freeze in place
    (on the same batches and pseudo-samples as ``lamol``: :mod:`rational_lamol.streams`) and
    records the transition in ``cci.json``."""

    level = "block"

    def _check_level(self) -> None:
        level = self.options["level"] or type(self).level
        if level != type(self).level:
            raise DataError(f"method {self.name!r} works at level {type(self).level!r}, not {level!r}",
                            field=f"method_options.{self.name}.level")
        self.options["level"] = level

    # -- the freeze history (survives a restart through cci.json) ---------------------------------
    def history(self, ctx: TaskContext) -> list[dict[str, Any]]:
        """``cci.json`` entries of the transitions before this stage (a resumed stage is redone)."""
        path = ctx.run_dir / CCI_FILE
        if not path.is_file():
            return []
        entries = read_json(path)
        earlier = set(ctx.order[1 : ctx.index])
        return [e for e in entries if e.get("to_task") in earlier]

    def frozen_before(self, history: Sequence[dict[str, Any]]) -> FreezeSpec:
        spec = FreezeSpec()
        if self.options.get("accumulate", True):
            for entry in history:
                spec = spec.merged(components_to_spec(entry["chosen"], self.options["level"]))
        return spec

    def choose(self, ctx: TaskContext, earlier: FreezeSpec, *,
               callbacks: Sequence[TrainingCallback]) -> tuple[FreezeSpec, FreezeSpec, dict[str, Any]]:
        """``(chosen, frozen, record)`` for this transition: the new components, everything frozen
        while retraining, and what ``cci.json`` should say about the choice."""
        raise NotImplementedError

    # -- one stage --------------------------------------------------------------------------------
    def learn_task(self, ctx: TaskContext, *, callbacks: Sequence[TrainingCallback] = ()):
        if ctx.index == 0:
            return super().learn_task(ctx, callbacks=callbacks)
        level = self.options["level"]
        history = self.history(ctx)
        chosen, frozen, record = self.choose(ctx, self.frozen_before(history), callbacks=callbacks)

        # retrain from M_t (ctx.model, untouched by any probe) with the freeze in place
        freezer = Freezer(ctx.model, frozen)
        try:
            super().learn_task(ctx, callbacks=[*callbacks, freezer])
            counts = freezer.parameter_report(ctx.model)
        finally:
            freezer.release()
        _log_counts(self.name, counts)

        entry = {
            "from_task": ctx.order[ctx.index - 1],
            "to_task": ctx.task_names[0],
            "level": level,
            "chosen": spec_to_components(chosen, level),
            "frozen": spec_to_components(frozen, level),
            **record,
            "param_counts": counts,
        }
        ctx.write_json(CCI_FILE, [*history, entry])
        ctx.stats["cci"] = {k: entry[k] for k in ("chosen", "frozen", *(k for k in ("n_used", "n_skipped", "n_tied")
                                                                       if k in entry))}
        ctx.stats["frozen_parameters"] = counts["total"]
        return ctx.model


class RationalMethod(FreezingMethod):
    """LAMOL plus rationale-guided critical freezing (probe → CCI → freeze → retrain)."""

    option_defaults = {
        "level": None,  # set per registered name; may not contradict it
        "top_k": 12,
        "beta": 20.0,
        "n_examples": 200,
        "split": "val",
        "accumulate": True,
        "row_filter": "all",
        "cci_batch_size": 8,
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self._check_level()
        o = self.options
        problems = []
        if not isinstance(o["top_k"], int) or o["top_k"] < 1:
            problems.append(f"top_k must be an integer >= 1, got {o['top_k']!r}")
        if not isinstance(o["beta"], (int, float)) or not 0 < float(o["beta"]) <= 100:
            problems.append(f"beta must be in (0, 100], got {o['beta']!r}")
        if not isinstance(o["n_examples"], int) or o["n_examples"] < 1:
            problems.append(f"n_examples must be an integer >= 1, got {o['n_examples']!r}")
        if o["split"] not in ("train", "val", "test"):
            problems.append(f"split must be train, val or test, got {o['split']!r}")
        if o["row_filter"] not in ROW_FILTERS:
            problems.append(f"row_filter must be one of {ROW_FILTERS}, got {o['row_filter']!r}")
        if not isinstance(o["accumulate"], bool):
            problems.append(f"accumulate must be true or false, got {o['accumulate']!r}")
        if not isinstance(o["cci_batch_size"], int) or o["cci_batch_size"] < 1:
            problems.append(f"cci_batch_size must be an integer >= 1, got {o['cci_batch_size']!r}")
        if problems:
            raise DataError("; ".join(problems), field=f"method_options.{self.name}")

    def choose(self, ctx: TaskContext, earlier: FreezeSpec, *,
               callbacks: Sequence[TrainingCallback]) -> tuple[FreezeSpec, FreezeSpec, dict[str, Any]]:
        o = self.options
        prev_task, task = ctx.order[ctx.index - 1], ctx.task_names[0]

        # 1. probe: a copy of M_t learns the task the LAMOL way, from its own random stream
        log.info("  [%s] probe: learning %s from a copy of the model", self.name, task)
        probe = ctx.copy_model()
        LamolMethod.learn_task(self, ctx.with_model(probe, stream="probe"), callbacks=callbacks)
        probe_stats = ctx.stats["train"].pop()

        # 2. CCI on the previous task's rationale-annotated examples
        examples, source = cci_rationale_examples(ctx.session, prev_task, o["split"])
        examples = examples[: o["n_examples"]]
        items, no_rationale = cci_items(ctx.tasks[prev_task], examples, ctx.tokenizer, ctx.max_length)
        result: CCIResult = identify_critical_components(
            ctx.model, probe,
            cci_batches(items, batch_size=o["cci_batch_size"], pad_token_id=ctx.ids.pad, device=ctx.accelerator.device),
            level=o["level"], top_k=o["top_k"], beta=float(o["beta"]), row_filter=o["row_filter"],
            tie_seed=stream_seed(ctx.seed, ctx.learned_tasks, "ties"),
            n_without_rationale=no_rationale,
        )
        del probe
        gc.collect()

        # 3. freeze what CCI chose (plus the earlier choices when accumulating)
        chosen = FreezeSpec.from_cci(result)
        log.info("  [%s] CCI %s -> %s: chose %s (votes %s; %d used, %d skipped, %d with tied scores)", self.name,
                 prev_task, task, spec_to_components(chosen, o["level"]), result.votes, result.n_used,
                 result.n_skipped, result.n_tied)
        if chosen.is_empty():
            log.warning("  [%s] no example could vote (empty rationales in the window): nothing new frozen",
                        self.name)
        ctx.stats["probe_train"] = probe_stats
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
            "accumulate": o["accumulate"],
            "split": o["split"],
            "rationale_source": source,
            "ties": result.ties,
        }
        return chosen, earlier.merged(chosen), record


def _log_counts(method: str, counts: dict[str, Any]) -> None:
    per_block = ", ".join(f"b{r['block']} {r['trainable']}/{r['frozen']}" for r in counts["blocks"])
    total = counts["total"]
    log.info("  [%s] parameters trainable/frozen per block: %s; outside blocks %d/%d; total %d/%d", method,
             per_block, counts["outside_blocks"]["trainable"], counts["outside_blocks"]["frozen"],
             total["trainable"], total["frozen"])


@register_method("rational-block")
class RationalBlockMethod(RationalMethod):
    """Rational LAMOL, block level: one block chosen per transition (the mode of the votes)."""

    level = "block"


@register_method("rational-head")
class RationalHeadMethod(RationalMethod):
    """Rational LAMOL, head level: the ``top_k`` most voted (block, head) pairs per transition."""

    level = "head"
