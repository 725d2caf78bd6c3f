"""Metrics as pure functions.

- :mod:`rationale_commons.metrics.lifelong` — ACC, BWT, FWT, forgetting over a score matrix.
- :mod:`rationale_commons.metrics.eraser` — ERASER rationale metrics (token P/R/F1, IOU F1,
  AUPRC, comprehensiveness/sufficiency), numerically equal to the ERASER benchmark's scorer.
"""

from rationale_commons.metrics.eraser import score_results, summary
from rationale_commons.metrics.lifelong import METRIC_DEFINITIONS, lifelong_metrics

__all__ = ["METRIC_DEFINITIONS", "lifelong_metrics", "score_results", "summary"]
