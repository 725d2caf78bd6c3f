"""What a task's labels alone give on its test split, beside every LAMOL accuracy: the majority
training label and a full-text TF-IDF logistic regression (:func:`invrat.baselines.label_baselines`),
both trained on the same training examples the LM sees (capped and windowed as the config says)
and scored on the same test examples. A method's per-task accuracy is only informative above
these; the run dir keeps them in ``task_baselines.json`` and the report prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rational_lamol.tasks import TaskData

FILE_NAME = "task_baselines.json"


def task_baselines(tasks: Mapping[str, TaskData]) -> dict[str, dict[str, Any]]:
    """Per task: training and test sizes, and the test accuracy (percent, like the LM's exact
    match) of the majority class and of the TF-IDF logistic regression. Tasks without training or
    test examples are left out."""
    from invrat.baselines import label_baselines

    out: dict[str, dict[str, Any]] = {}
    for name, task in tasks.items():
        train, test = task.splits.train, task.splits.test
        if not train or not test:
            continue
        scores = label_baselines(train, test)
        out[name] = {"n_train": len(train), "n_test": len(test),
                     "majority": round(100 * scores["majority_accuracy"], 2),
                     "tfidf_logreg": round(100 * scores["tfidf_logreg_accuracy"], 2)}
    return out
