"""Lifelong-learning methods as small strategy objects (docs/algorithms.md §1).

A method says how the model learns one stage of the task sequence: :meth:`Method.learn` takes the
stage (a data-only :class:`rational_lamol.stage.Stage`) and the model, trains the model in place
and returns it with the stage's statistics. The pipeline owns everything else (the order,
evaluation, checkpoints, resume, results). Built in here:

- ``finetune``: the task's data only (sequential fine-tuning: the lower bound).
- ``lamol``: the task's data plus pseudo-samples of earlier tasks that the model generates itself
  before training, ``L = L_QA + lm_lambda L_LM``.
- ``multitask``: one model trained on the union of all tasks (the usual upper bound).

Rational LAMOL (:mod:`rational_lamol.rational`) and its random controls
(:mod:`rational_lamol.controls`) build on :class:`LamolMethod`; :mod:`rational_lamol.registry`
names them all. A method's options are a pydantic model (:attr:`Method.Options`), validated when
the experiment is checked, before anything is trained.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from rational_lamol.config import TrainingConfig
from rational_lamol.pseudo import generate_pseudo_samples
from rational_lamol.pseudo_quality import describe, is_flagged, sample_profile
from rational_lamol.stage import Stage
from rational_lamol.tasks import TrainSequence, pseudo_sample_count
from rational_lamol.trainer import TrainingCallback, train_task
from rationale_commons.runtime import write_jsonl_atomic

log = logging.getLogger("rational_lamol")


class NoOptions(BaseModel):
    """A method without options: any key under ``[method_options.<name>]`` is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Learned:
    """What :meth:`Method.learn` returns: the trained model and the stage's statistics (JSON)."""

    model: Any
    stats: dict[str, Any] = field(default_factory=dict)


class Method:
    """How one stage is learned. Subclasses set ``name`` and override :meth:`learn`."""

    name: ClassVar[str] = "?"
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: task 1 is trained exactly as plain LAMOL trains it, so the run may reuse a cached task-1 model
    shares_task1: ClassVar[bool] = True
    #: a method that must run first for the same (order, seed): a random control reads its choices
    requires: ClassVar[str | None] = None

    def __init__(self, options: BaseModel | None = None) -> None:
        self.options = options if options is not None else self.Options()

    def stages(self, order: Sequence[str]) -> list[list[str]]:
        """The tasks learned at each stage: one task per stage."""
        return [[task] for task in order]

    def training_config(self, base: TrainingConfig) -> TrainingConfig:
        """The training settings this method uses (default: the run's)."""
        return base

    def learn(self, stage: Stage, model, *, callbacks: Sequence[TrainingCallback] = ()) -> Learned:
        """Train ``model`` on the stage's task data."""
        stats = self.fit(stage, model, stage.train_sequences(), callbacks=callbacks)
        return Learned(model, {"train": [stats]})

    def fit(self, stage: Stage, model, sequences: Sequence[TrainSequence], *, stream: str = "train",
            callbacks: Sequence[TrainingCallback] = (), step_share: float = 1.0) -> dict[str, Any]:
        """Train ``model`` in place on ``sequences`` from the stage's random ``stream`` (stopping
        after ``step_share`` of the schedule's steps); its statistics."""
        stats = train_task(
            model, stage.tokenizer, list(sequences), stage.training, callbacks=callbacks,
            accelerator=stage.accelerator, seed=stage.seed_for(stream), desc=f"{self.name} {'+'.join(stage.task_names)}",
            step_share=step_share,
        )
        log.info("  trained %s on %d sequences (%s): %d steps, %.1fs, %.0f tok/s, loss %.3f",
                 "+".join(stage.task_names), len(sequences), stream, stats.steps, stats.seconds,
                 stats.tokens_per_second, stats.final_loss)
        return {**stats.as_dict(), "sequences": len(sequences)}

    def options_dict(self) -> dict[str, Any]:
        return self.options.model_dump()


class FinetuneMethod(Method):
    """Sequential fine-tuning with the same loss and budget, no replay (the lower bound)."""

    name = "finetune"


class MultitaskMethod(Method):
    """All tasks' training data at once, same loss and epochs (the upper bound)."""

    name = "multitask"
    shares_task1 = False

    def stages(self, order: Sequence[str]) -> list[list[str]]:
        return [list(order)]


class LamolMethod(Method):
    """LAMOL: the task's data plus pseudo-samples the model generates of the earlier tasks."""

    name = "lamol"

    def learn(self, stage: Stage, model, *, callbacks: Sequence[TrainingCallback] = ()) -> Learned:
        replayed, replay_stats = self.replay(stage, model)
        stats = self.fit(stage, model, [*stage.train_sequences(), *replayed], callbacks=callbacks)
        return Learned(model, {"train": [stats], **replay_stats})

    def replay(self, stage: Stage, model) -> tuple[list[TrainSequence], dict[str, Any]]:
        """Pseudo-samples of the earlier tasks from ``model`` as it is now (before this stage's
        training), from the stage's ``"replay"`` stream; written to ``pseudo_samples.jsonl``."""
        earlier = stage.previous_tasks
        if not earlier:
            return [], {}
        n_train = sum(len(stage.tasks[t].splits.train) for t in stage.task_names)
        counts = dict(zip(earlier, pseudo_sample_count(stage.training.gamma, n_train, len(earlier)), strict=True))
        with stage.accelerator.autocast():  # the run's precision (bf16 on a GPU; a no-op in fp32)
            sequences, report = generate_pseudo_samples(
                model, stage.tokenizer, counts, stage.ids,
                profiles={t: sample_profile(stage.tasks[t]) for t in earlier}, max_length=stage.max_length - 1,
                top_k=stage.training.top_k, temperature=stage.training.temperature,
                batch_size=stage.training.gen_batch_size, seed=stage.seed_for("replay"),
                accelerator=stage.accelerator,
            )
        summary = report.as_dict()
        quality = summary["quality"]["total"]
        log.info("  pseudo-samples: kept %s of %s, %s (%.0f tok/s)", summary["kept"], summary["requested"],
                 describe(quality), summary["tokens_per_second"] or 0)
        if is_flagged(quality):
            log.warning("  %s stage %d: most pseudo-samples are not well-formed: %s; see %s", self.name,
                        stage.index + 1, describe(quality), stage.stage_dir / "stage.json")
        if stage.accelerator.is_main_process:  # what the model replayed, for inspection
            rows = [{"task": q.task, "text": stage.tokenizer.decode(q.qa_ids, skip_special_tokens=False)}
                    for q in sequences]
            write_jsonl_atomic(stage.stage_dir / "pseudo_samples.jsonl", rows)
        return sequences, {"pseudo": summary}

