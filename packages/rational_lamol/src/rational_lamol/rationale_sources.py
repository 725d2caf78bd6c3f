"""Where each task's rationales come from for CCI (Rational LAMOL §3 and §4.3).

``TaskConfig.rationales`` picks the source per task:

- ``None`` or ``"human"``: the data's own rationales (ERASER evidences, or the planted words of
  the synthetic suite);
- a path: an ERASER annotation JSONL (InvRat's ``rationalize`` output or any ERASER file) whose
  evidences replace the data's (applied when the task is loaded, :mod:`rational_lamol.tasks`);
- ``"invrat"``: the unsupervised path of the paper — train InvRat (Chang et al., ICML 2020) on
  the task's train split, rationalize the split CCI reads, and use those rationales. Its
  environments are the data's when it has them, else inferred (:func:`pipeline_environments`);
  the policy and the environment sizes are recorded in the rationale info (and ``cci.json``).

The InvRat output of a task is written once per experiment and shared by every method and seed:
``<out>/rationales/<task>/`` (the InvRat run dir), ``<out>/rationales/<task>.jsonl`` (ERASER
annotations over the CCI split; reused on resume) and ``<out>/rationales/<task>.quality.json``
(token P/R/F1 against the data's own rationale when it has one). ``<out>/rationale_samples.json``
holds a few examples per task for the report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rational_lamol.tasks import TaskData
from rationale_commons.errors import DataError
from rationale_commons.loaders import apply_rationales
from rationale_commons.metrics.eraser import token_prf
from rationale_commons.records import Example
from rationale_commons.runtime import read_json, write_json_atomic, write_jsonl_atomic
from rationale_commons.spans import mask_to_spans

log = logging.getLogger("rational_lamol")

HUMAN = "human"
INVRAT = "invrat"
N_SAMPLES = 3
SAMPLES_FILE = "rationale_samples.json"


def source_kind(rationales: str | None) -> str:
    """``"human"``, ``"invrat"`` or ``"file"`` for a ``TaskConfig.rationales`` value."""
    if rationales is None or rationales == HUMAN:
        return HUMAN
    if rationales == INVRAT:
        return INVRAT
    return "file"


def apply_masks(examples: Sequence[Example], masks: dict[str, list[int]]) -> list[Example]:
    """Examples whose rationale is replaced by ``masks[id]`` (examples without a mask keep none)."""
    out = []
    for ex in examples:
        mask = masks.get(ex.id)
        if mask is not None and len(mask) != len(ex.words):
            raise DataError(f"rationale of example {ex.id!r} has {len(mask)} entries for {len(ex.words)} words")
        out.append(ex.model_copy(update={"rationale": mask}))
    return out


def rationale_quality(gold: Sequence[Example], predicted: dict[str, list[int]]) -> dict[str, Any] | None:
    """ERASER token-level P/R/F1 (macro and micro) of predicted word masks against the examples'
    own rationales; ``None`` when no example has one."""
    truth = {ex.id: mask_to_spans(ex.rationale) for ex in gold if ex.rationale is not None}
    if not truth:
        return None
    pred = {k: mask_to_spans(predicted.get(k, [])) for k in truth}
    scores = token_prf(truth, pred)
    selected = [sum(predicted[k]) / max(1, len(predicted[k])) for k in truth if k in predicted]
    return {
        "token_f1_macro": round(scores["instance_macro"]["f1"], 4),
        "token_p_macro": round(scores["instance_macro"]["p"], 4),
        "token_r_macro": round(scores["instance_macro"]["r"], 4),
        "token_f1_micro": round(scores["instance_micro"]["f1"], 4),
        "selection_rate": round(sum(selected) / max(1, len(selected)), 4),
        "n": len(truth),
        "definition": "ERASER token P/R/F1 over whitespace words; macro = mean over documents",
    }


def pipeline_environments(train: Sequence[Example], requested: str) -> str:
    """InvRat's environment policy inside the pipeline: ``auto`` means the data's environments when
    every training example has one, else inferred ones (EIIL-style), so that the invariance penalty
    is at work; one environment would make InvRat a plain rationalizer. Explicit choices stand."""
    if requested != "auto":
        return requested
    return "column" if train and all(ex.env is not None for ex in train) else "infer"


def invrat_rationales(
    task: TaskData, split: str, out_dir: Path, invrat_options: dict[str, Any], *, seed: int = 0,
    main_process: bool = True,
) -> tuple[list[Example], dict[str, Any]]:
    """Train InvRat on ``task``'s train split (once per experiment) and rationalize ``split``.

    Returns the split's examples with InvRat's rationales and an info dict (quality against the
    data's own rationale, where it came from). Reuses ``<out>/rationales/<task>.jsonl`` when present.
    """
    from invrat import InvRatConfig, merge_settings, rationalize, to_annotations, train_invrat

    folder = out_dir / "rationales"
    ann_path = folder / f"{task.name}.jsonl"
    info_path = folder / f"{task.name}.quality.json"
    examples = list(task.splits[split])
    if ann_path.is_file() and info_path.is_file():
        log.info("  %s: InvRat rationales reused from %s", task.name, ann_path.relative_to(out_dir))
        return apply_rationales(examples, ann_path), read_json(info_path)
    config = InvRatConfig.model_validate(merge_settings({"seed": seed, "progress": False}, invrat_options))
    config = config.model_copy(update={"environments": pipeline_environments(task.splits.train, config.environments.policy)})
    log.info("  %s: training InvRat on %d examples for its rationales (environments: %s)", task.name,
             len(task.splits.train), config.environments.policy)
    if config.environments.policy == "single":
        log.warning("  %s: InvRat with one environment is a plain rationalizer (no invariance penalty)", task.name)
    run_dir = train_invrat(task.splits, config, folder / task.name, resume=True)
    envs = read_json(run_dir / "envs.json")
    rats = rationalize(run_dir, examples, device=config.runtime.device)
    masks = {ex.id: r.mask for ex, r in zip(examples, rats, strict=True)}
    quality = rationale_quality(examples, masks)
    info = {"task": task.name, "source": INVRAT, "split": split, "invrat_run": (folder / task.name).name,
            "environments": {"policy": envs["policy"], "counts": envs["counts"], "env_player": envs["env_player"]},
            "quality_vs_data_rationale": quality}
    if main_process:
        write_jsonl_atomic(ann_path, [a.model_dump(exclude_none=True) for a in to_annotations(examples, rats)])
        write_json_atomic(info_path, info)
    if quality:
        log.info("  %s: InvRat rationale token F1 %.3f vs the data's rationale", task.name, quality["token_f1_macro"])
    return apply_masks(examples, masks), info


def rationale_samples(task: TaskData, examples: Sequence[Example], n: int = N_SAMPLES) -> list[dict[str, Any]]:
    """A few examples for the report: words, the rationale used (predicted) and the data's own."""
    gold = {ex.id: ex.rationale for ex in task.splits.val + task.splits.train + task.splits.test}
    out = []
    for ex in list(examples)[:n]:
        out.append({"task": task.name, "label": ex.label, "query": ex.query, "words": ex.words,
                    "predicted": ex.rationale, "gold": gold.get(ex.id)})
    return out


class RationaleProvider:
    """The examples CCI reads for a (task, split), with the rationales of the task's source (human /
    file / InvRat); computed once per experiment (InvRat trains once per task) and shared by every
    method and seed. Also keeps ``rationale_samples.json`` (a few examples per task, for the report)."""

    def __init__(self, config, tasks: dict[str, TaskData], out_dir: Path, accelerator) -> None:
        self.config = config
        self.tasks = tasks
        self.out_dir = out_dir
        self.accelerator = accelerator
        self._cache: dict[tuple[str, str], tuple[list[Example], dict[str, Any]]] = {}

    def __call__(self, task_name: str, split: str, source: str | None = None) -> tuple[list[Example], dict[str, Any]]:
        """``source`` (``"human"`` or ``"invrat"``) overrides the task's own source, e.g. to compare
        the components CCI chooses from either (``rationale_samples.json`` keeps the task's own)."""
        kind = source or source_kind(self.tasks[task_name].config.rationales)
        key = (task_name, split, kind)
        if key not in self._cache:
            self._cache[key] = self._load(task_name, split, kind, record_samples=source is None)
        return self._cache[key]

    def _load(self, task_name: str, split: str, kind: str, *, record_samples: bool) -> tuple[list[Example], dict[str, Any]]:
        task = self.tasks[task_name]
        if not task.splits[split]:
            raise DataError(f"task {task_name!r} has no {split!r} examples for CCI; set the method option 'split'")
        if kind == HUMAN and source_kind(task.config.rationales) == "file":
            raise DataError(f"task {task_name!r}: its own rationales were replaced by {task.config.rationales}; "
                            "no human rationales to compare with")
        main = self.accelerator.is_main_process
        if kind == INVRAT:
            from invrat import (
                merge_settings,  # invrat is imported only when a task asks for its rationales
            )

            options = merge_settings(self.config.invrat or {}, task.config.invrat or {})
            examples, info = invrat_rationales(task, split, self.out_dir, options, seed=self.config.data_seed,
                                               main_process=main)
            self.accelerator.wait_for_everyone()
        else:
            examples = list(task.splits[split])
            info = {"task": task_name, "source": kind if kind == HUMAN else task.config.rationales, "split": split}
        info["n_with_rationale"] = sum(ex.rationale is not None and any(ex.rationale) for ex in examples)
        if main and record_samples:
            path = self.out_dir / SAMPLES_FILE
            samples = read_json(path) if path.is_file() else []
            samples = [s for s in samples if s.get("task") != task_name] + rationale_samples(task, examples)
            write_json_atomic(path, samples)
        return examples, info
