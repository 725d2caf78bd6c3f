"""CCI between two saved models on one task's data: what ``rational-lamol cci`` runs.

Outside a run, the data comes as a source string (ERASER folder, table file, ``synthetic:<name>``)
and the models as ``save_pretrained`` folders; :func:`data_task_config` turns the source into a
task and :func:`cci_between_saved` loads both models and runs CCI on the task's examples exactly
as a Rational LAMOL transition does (:func:`rational_lamol.cci_inputs.cci_items`, then
:func:`rational_lamol.cci.identify_critical_components`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rational_lamol.cci import Level
from rational_lamol.config import TaskConfig
from rationale_commons.errors import DataError
from rationale_commons.records import SPLIT_NAMES

MAX_WINDOW = 1024  # GPT-2's window: longer models are read at this length unless asked otherwise


def data_task_config(data: str, *, rationales: str = "human", question: str | None = None) -> TaskConfig:
    """A task reading ``data``, named after its last path part (made a safe task name), whose
    rationales are ``"human"`` (the data's own) or an ERASER annotation file's."""
    if rationales != "human" and not Path(rationales).is_file():
        raise DataError("rationales: not 'human' and not a file", path=rationales)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(data.split(":")[-1]).name).lstrip(".") or "data"
    return TaskConfig(name=name, data=data, question=question,
                      rationales=None if rationales == "human" else str(Path(rationales).resolve()))


def cci_between_saved(
    old: Path, new: Path, task: TaskConfig, *, split: str = "val", level: Level = "block", top_k: int = 12,
    n: int = 200, beta: float = 20.0, max_length: int | None = None,
) -> dict[str, Any]:
    """CCI of ``new`` against ``old`` on the first ``n`` examples of ``task``'s ``split``.

    Returns :meth:`~rational_lamol.cci.CCIResult.to_dict` plus ``split``: ``n_skipped`` counts
    every example that did not vote, the ``n_without_rationale`` without any rationale included.
    The window is ``max_length``, else the old model's (at most :data:`MAX_WINDOW`).
    """
    from rational_lamol.cci import identify_critical_components
    from rational_lamol.cci_inputs import cci_batches, cci_items
    from rational_lamol.modeling import load_saved, prepare_model_tokens
    from rational_lamol.tasks import load_task

    if split not in SPLIT_NAMES:
        raise DataError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
    for role, folder in (("old", old), ("new", new)):
        if not (folder / "config.json").is_file():
            raise DataError(f"{role} model: not a save_pretrained model folder (no config.json)", path=folder)
    data = load_task(task)
    examples = list(data.splits[split])[:n]
    if not examples:
        raise DataError(f"the data has no {split!r} examples", path=task.data)
    old_model, tokenizer = load_saved(old)
    new_model, _ = load_saved(new)
    for model in (old_model, new_model):
        prepare_model_tokens(model, tokenizer, [task.name])  # LAMOL tokens for models trained elsewhere
    config = old_model.config
    window = max_length or min(int(getattr(config, "n_positions", None)
                                   or getattr(config, "max_position_embeddings", MAX_WINDOW)), MAX_WINDOW)
    items, without_rationale = cci_items(data, examples, tokenizer, window)
    result = identify_critical_components(
        old_model, new_model, cci_batches(items, pad_token_id=tokenizer.pad_token_id or 0),
        level=level, top_k=top_k, beta=beta, n_without_rationale=without_rationale,
    )
    return {**result.to_dict(), "split": split}
