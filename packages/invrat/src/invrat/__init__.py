"""invrat: Invariant Rationalization (Chang, Zhang, Yu, Jaakkola; ICML 2020) as a library and a CLI.

Stable library API (Rational LAMOL calls these):

- :class:`InvRatConfig` / :func:`load_config` — every training knob, in sections (pydantic,
  ``extra="forbid"``; flat keys of older configs still load); :func:`merge_settings` layers settings.
- :func:`train_invrat(splits, config, out_dir, *, resume=False) -> Path` — train on ``splits.train``
  (``splits.val`` selects the model) and write a run dir; returns it.
- :func:`rationalize(run_dir, examples, batch_size=None) -> list[Rationale]` — per example: a 0/1
  ``mask`` and generator probability ``scores`` per document word, the predicted ``label`` and
  ``label_scores``; :class:`Rationalizer` keeps a loaded run dir for repeated calls.
- :func:`to_annotations(examples, rationales)` — ERASER annotation records (evidence spans);
  :func:`to_results(rationales)` — ERASER results lines (the scorer's input).
- :func:`evaluate_file(predictions, gold_data, split)` — ERASER metrics via the shared scorer.

Nothing is imported from ``rational_lamol``; importing this package starts no work.
"""

from invrat.config import InvRatConfig, load_config, merge_settings
from invrat.evaluate import evaluate_file
from invrat.game import train_invrat
from invrat.rationalize import Rationale, Rationalizer, rationalize, to_annotations, to_results

__all__ = [
    "InvRatConfig",
    "Rationale",
    "Rationalizer",
    "evaluate_file",
    "load_config",
    "merge_settings",
    "rationalize",
    "to_annotations",
    "to_results",
    "train_invrat",
]
