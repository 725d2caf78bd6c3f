"""ERASER rationale metrics (DeYoung et al., ACL 2020), equal to the benchmark's own scorer.

Written from a reading of ``rationale_benchmark/metrics.py`` in jayded/eraserbenchmark;
the numbers are the same, the code is ours. Token space: a document's whitespace tokens
("flattened" documents), spans ``[start, end)``. Everything is keyed, as in the reference,
by ``(annotation_id, docid)``; the human rationale of a key is the union of all evidence
spans of that annotation in that document (duplicates collapse).

Low-level pure functions:

- :func:`instance_prf` — P/R/F1 over keyed sets. ``instance_micro`` pools all keys;
  ``instance_macro`` averages per-key P, R and **F1** over the keys that have a gold or a
  predicted item (macro F1 is the mean of per-key F1s, not the F1 of mean P and R).
  Used on token indices (``token_prf``) and on whole spans (``rationale_prf``, exact match);
  :func:`mask_token_f1` is one key's token F1 from 0/1 masks.
- :func:`iou_f1` — partial-match F1: a predicted span is a true positive when its best IOU
  with a gold span of the same key is >= the threshold. Micro pools counts; macro averages
  per-key recall (over gold keys) and precision (over predicted keys), then takes the F1 of
  those two means. As in the reference, several predicted spans may match one gold span, so
  recall can exceed 1 (e.g. gold [0,10), predictions [0,5) and [5,10) at threshold 0.5).
- :func:`auprc` (area under the trapezoidal precision-recall curve, sklearn ``auc`` over
  ``precision_recall_curve``), :func:`average_precision` (sklearn ``average_precision_score``)
  and :func:`roc_auc` (sklearn ``roc_auc_score``), per document; :func:`soft_token_scores`
  averages them over keys (AP and ROC AUC skip documents whose gold is all 0 or all 1).
- :func:`classification_report` / accuracy, :func:`comprehensiveness`, :func:`sufficiency`,
  :func:`entropy`, :func:`kl_divergence`, :func:`aopc`.

Top level: :func:`score_results` takes ERASER results lines and gold annotations and
returns the reference's layout (keys only where the inputs allow them)::

    {
      "iou_scores": [{"threshold": 0.5, "micro": {"p","r","f1"}, "macro": {"p","r","f1"}}, ...],
      "rationale_prf": {"instance_micro": {"p","r","f1"}, "instance_macro": {"p","r","f1"}},
      "token_prf":     {"instance_micro": {...}, "instance_macro": {...}},       # hard predictions
      "token_soft_metrics": {"auprc", "average_precision", "roc_auc_score"},      # soft predictions
      "classification_scores": {                                                  # classifications
        "accuracy", "prf": {<label>: {"precision","recall","f1-score","support"}, "accuracy",
                            "macro avg": {...}, "weighted avg": {...}},
        "comprehensiveness", "sufficiency",                    # with the *_classification_scores
        "comprehensiveness_entropy", "comprehensiveness_kl", "sufficiency_entropy", "sufficiency_kl",
        "aopc_thresholds", "comprehensiveness_aopc", "comprehensiveness_aopc_points",
        "sufficiency_aopc", "sufficiency_aopc_points",         # with "thresholded_scores"
      },
    }

:func:`summary` flattens the headline numbers (``token_f1``, ``iou_f1``, ``auprc``, ...).
Values are fractions (not percentages).

Where the reference crashes or depends on the first line only, we are defined instead:

- hard/soft predictions are scored when ANY result carries them (the reference looked only
  at the first result's first document and skipped everything when that one was empty);
- an empty prediction set has precision 0, an empty gold set recall 0 (the reference divided
  by zero in the micro scores); with no key at all the macro scores are 0;
- a classification outside the gold label set is one more class (the reference raised KeyError);
- AP / ROC AUC with no two-class document: the key is omitted (the reference gave NaN).
- A document with soft scores but no gold rationale gets AUPRC 0.5, as current scikit-learn
  computes it (recall is set to 1 when there is no positive; sklearn < 1.1 gave NaN).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rationale_commons.records import Annotation

__all__ = [
    "DEFAULT_AOPC_THRESHOLDS",
    "aopc",
    "auprc",
    "average_precision",
    "classification_report",
    "comprehensiveness",
    "entropy",
    "instance_prf",
    "iou_f1",
    "kl_divergence",
    "roc_auc",
    "score_results",
    "soft_token_scores",
    "spans_to_tokens",
    "sufficiency",
    "summary",
    "token_prf",
]

Key = tuple[str, str]  # (annotation_id, docid)
Span = tuple[int, int]  # [start, end)

DEFAULT_AOPC_THRESHOLDS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)
"""The reference CLI's default fractions of tokens removed/kept for AOPC."""


def _f1(p: float, r: float) -> float:
    return 0.0 if p == 0 or r == 0 else 2 * p * r / (p + r)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _prf(p: float, r: float, f1: float | None = None) -> dict[str, float]:
    return {"p": float(p), "r": float(r), "f1": float(_f1(p, r) if f1 is None else f1)}


# --------------------------------------------------------------------------- hard rationales


def spans_to_tokens(spans: Iterable[Span]) -> set[int]:
    """The token indices a set of ``[start, end)`` spans covers."""
    return {t for start, end in spans for t in range(start, end)}


def instance_prf(
    truth: Mapping[Key, Collection[Hashable]], pred: Mapping[Key, Collection[Hashable]]
) -> dict[str, dict[str, float]]:
    """``instance_micro`` and ``instance_macro`` P/R/F1 of predicted items against gold items.

    Items are compared as sets per key (duplicates count once). Keys whose gold and
    prediction are both empty do not count.
    """
    gold = {k: set(v) for k, v in truth.items() if len(v)}
    guess = {k: set(v) for k, v in pred.items() if len(v)}
    keys = sorted(set(gold) | set(guess))
    hits = {k: len(gold.get(k, set()) & guess.get(k, set())) for k in keys}
    n_hits = sum(hits.values())
    micro_p = _ratio(n_hits, sum(len(v) for v in guess.values()))
    micro_r = _ratio(n_hits, sum(len(v) for v in gold.values()))
    per_key = [_set_prf(gold.get(k, set()), guess.get(k, set())) for k in keys]
    if per_key:
        macro = [sum(col) / len(per_key) for col in zip(*per_key, strict=True)]
    else:
        macro = [0.0, 0.0, 0.0]
    return {"instance_micro": _prf(micro_p, micro_r), "instance_macro": _prf(*macro)}


def _set_prf(gold: set[Hashable], guess: set[Hashable]) -> tuple[float, float, float]:
    """P, R and F1 of one key's predicted items against its gold items."""
    hits = len(gold & guess)
    p, r = _ratio(hits, len(guess)), _ratio(hits, len(gold))
    return p, r, _f1(p, r)


def mask_token_f1(gold: Sequence[Any], pred: Sequence[Any]) -> float:
    """Token F1 of one document's 0/1 masks: the per-key F1 of ``token_prf`` (0 when either is empty)."""
    return _set_prf({i for i, v in enumerate(gold) if v}, {i for i, v in enumerate(pred) if v})[2]


def token_prf(
    truth: Mapping[Key, Iterable[Span]], pred: Mapping[Key, Iterable[Span]]
) -> dict[str, dict[str, float]]:
    """Token-level P/R/F1 (the ERASER "token_prf") from gold and predicted spans."""
    return instance_prf(
        {k: spans_to_tokens(v) for k, v in truth.items()},
        {k: spans_to_tokens(v) for k, v in pred.items()},
    )


def _span_iou(a: Span, b: Span) -> float:
    ta, tb = set(range(*a)), set(range(*b))
    union = len(ta | tb)
    return len(ta & tb) / union if union else 0.0


def iou_f1(
    truth: Mapping[Key, Iterable[Span]],
    pred: Mapping[Key, Iterable[Span]],
    thresholds: Sequence[float] = (0.5,),
) -> list[dict[str, Any]]:
    """Partial-match (IOU) P/R/F1 per threshold: ``[{"threshold", "micro", "macro"}]``."""
    gold = {k: set(v) for k, v in truth.items()}
    gold = {k: v for k, v in gold.items() if v}
    guess = {k: set(v) for k, v in pred.items()}
    guess = {k: v for k, v in guess.items() if v}
    best = {
        k: [max((_span_iou(p, t) for t in gold.get(k, ())), default=0.0) for p in spans]
        for k, spans in guess.items()
    }
    n_gold = {k: len(v) for k, v in gold.items()}
    n_pred = {k: len(v) for k, v in guess.items()}
    out = []
    for threshold in thresholds:
        tps = {k: sum(iou >= threshold for iou in ious) for k, ious in best.items()}
        micro_r = _ratio(sum(tps.values()), sum(n_gold.values()))
        micro_p = _ratio(sum(tps.values()), sum(n_pred.values()))
        rs = [tps.get(k, 0) / n for k, n in n_gold.items()]
        ps = [tps.get(k, 0) / n for k, n in n_pred.items()]
        macro_r = sum(rs) / len(rs) if rs else 0.0
        macro_p = sum(ps) / len(ps) if ps else 0.0
        out.append(
            {
                "threshold": float(threshold),
                "micro": _prf(micro_p, micro_r),
                "macro": _prf(macro_p, macro_r),
            }
        )
    return out


# --------------------------------------------------------------------------- soft rationales


def _threshold_counts(
    truth: Sequence[Any], scores: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (tps, fps) at each distinct score, from the highest score down."""
    y = np.asarray(truth, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape or y.size == 0:
        raise ValueError(f"need as many scores as gold labels (> 0), got {s.size} and {y.size}")
    if np.isnan(s).any():
        raise ValueError("soft rationale scores contain NaN")
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each score value
    tps = np.cumsum(y)[last_of_run]
    fps = 1 + last_of_run - tps
    return tps, fps


def _pr_curve(truth: Sequence[Any], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) with recall decreasing, ending at (1, 0), as sklearn returns them."""
    tps, fps = _threshold_counts(truth, scores)
    precision = tps / (tps + fps)
    # No positive at all: sklearn sets recall to 1 everywhere.
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def average_precision(truth: Sequence[Any], scores: Sequence[float]) -> float:
    """sklearn ``average_precision_score``: sum over thresholds of (R_n - R_{n-1}) P_n."""
    precision, recall = _pr_curve(truth, scores)
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def auprc(truth: Sequence[Any], scores: Sequence[float]) -> float:
    """Trapezoidal area under the precision-recall curve (sklearn ``auc(recall, precision)``)."""
    precision, recall = _pr_curve(truth, scores)
    dx = np.diff(recall)  # recall never increases along the curve
    return float(-np.sum(dx * (precision[1:] + precision[:-1]) / 2.0))


def roc_auc(truth: Sequence[Any], scores: Sequence[float]) -> float:
    """sklearn ``roc_auc_score`` for one binary problem (needs both classes)."""
    tps, fps = _threshold_counts(truth, scores)
    if tps[-1] == 0 or fps[-1] == 0:
        raise ValueError("ROC AUC needs both a positive and a negative token")
    if tps.size > 2:  # drop collinear points, as roc_curve(drop_intermediate=True) does
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps = tps[keep], fps[keep]
    tpr = np.r_[0.0, tps] / tps[-1]
    fpr = np.r_[0.0, fps] / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def soft_token_scores(
    truth: Mapping[Key, Sequence[Any]], scores: Mapping[Key, Sequence[float]]
) -> dict[str, float]:
    """Mean over keys of AUPRC (all keys), AP and ROC AUC (keys with both classes only).

    ``truth[k]`` is the 0/1 gold mask of key ``k``, ``scores[k]`` one score per token;
    ``scores`` must cover exactly the keys of ``truth``. With no key, AUPRC is 0 (as in the
    reference); AP and ROC AUC are left out when no key has both classes.
    """
    if set(truth) != set(scores):
        raise ValueError(
            "soft scores and gold masks must have the same (annotation_id, docid) keys"
        )
    if not scores:
        return {"auprc": 0.0}
    out = {"auprc": float(np.mean([auprc(truth[k], scores[k]) for k in scores]))}
    two_class = [k for k in scores if 0 < sum(bool(t) for t in truth[k]) < len(truth[k])]
    if two_class:
        out["average_precision"] = float(
            np.mean([average_precision(truth[k], scores[k]) for k in two_class])
        )
        out["roc_auc_score"] = float(np.mean([roc_auc(truth[k], scores[k]) for k in two_class]))
    return out


# --------------------------------------------------------------------------- classification, faithfulness


def classification_report(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Per-label precision/recall/F1/support plus accuracy, macro and weighted averages,
    laid out as sklearn's ``classification_report(output_dict=True)`` (labels sorted)."""
    if len(gold) != len(predicted) or not gold:
        raise ValueError(
            f"need as many predictions as gold labels (> 0), got {len(predicted)} and {len(gold)}"
        )
    labels = sorted(set(gold) | set(predicted))
    report: dict[str, Any] = {}
    rows = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        n_pred = sum(p == label for p in predicted)
        support = sum(g == label for g in gold)
        precision, recall = _ratio(tp, n_pred), _ratio(tp, support)
        f1 = _ratio(2 * tp, 2 * tp + (n_pred - tp) + (support - tp))
        report[label] = {
            "precision": precision,
            "recall": recall,
            "f1-score": f1,
            "support": support,
        }
        rows.append((precision, recall, f1, support))
    table = np.array(rows, dtype=np.float64)  # (labels, 4)
    report["accuracy"] = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    names = ("precision", "recall", "f1-score")
    report["macro avg"] = {n: float(np.average(table[:, i])) for i, n in enumerate(names)} | {
        "support": len(gold)
    }
    report["weighted avg"] = {
        n: float(np.average(table[:, i], weights=table[:, 3])) for i, n in enumerate(names)
    } | {"support": len(gold)}
    return report


def _mean_difference(full: Sequence[float], other: Sequence[float]) -> float:
    a = np.asarray(full, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"need two equal-length, non-empty lists of probabilities, got {a.shape} and {b.shape}"
        )
    return float(np.mean(a - b))


def comprehensiveness(full_probs: Sequence[float], reduced_probs: Sequence[float]) -> float:
    """Mean drop in the predicted class's probability when the rationale is REMOVED.

    ``full_probs[i]``: p(predicted class | whole input); ``reduced_probs[i]``: the same class
    with the rationale tokens deleted. Higher = the rationale mattered more.
    """
    return _mean_difference(full_probs, reduced_probs)


def sufficiency(full_probs: Sequence[float], rationale_only_probs: Sequence[float]) -> float:
    """Mean drop in the predicted class's probability when ONLY the rationale is kept.

    Lower = the rationale alone suffices.
    """
    return _mean_difference(full_probs, rationale_only_probs)


def entropy(probs: Sequence[float]) -> float:
    """Shannon entropy (nats) of a distribution, normalized first (``scipy.stats.entropy``)."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    return float(-np.sum(p * logs))


def kl_divergence(p_probs: Sequence[float], q_probs: Sequence[float]) -> float:
    """KL(p || q) in nats after normalizing both (``scipy.stats.entropy(p, q)``)."""
    p = np.asarray(p_probs, dtype=np.float64)
    q = np.asarray(q_probs, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    if np.any((p > 0) & (q == 0)):
        return float("inf")
    ratio = np.divide(p, q, out=np.ones_like(p), where=p > 0)
    return float(np.sum(p * np.log(ratio)))


def aopc(deltas: Sequence[Sequence[float]]) -> tuple[float, list[float]]:
    """Area over the perturbation curve: ``deltas[i][k]`` = p(full) - p(threshold k) for
    instance i. Returns the mean over everything and the mean per threshold."""
    table = np.asarray(deltas, dtype=np.float64)
    if table.ndim != 2 or table.size == 0:
        raise ValueError("AOPC needs one row of deltas per instance, one column per threshold")
    return float(table.mean()), table.mean(axis=0).tolist()


# --------------------------------------------------------------------------- results files


def _gold_spans(gold: Sequence[Annotation]) -> dict[Key, set[Span]]:
    spans: dict[Key, set[Span]] = {}
    for ann in gold:
        for ev in ann.all_evidences():
            spans.setdefault((ann.annotation_id, ev.docid), set()).add(
                (ev.start_token, ev.end_token)
            )
    return spans


def _check_results(
    results: Sequence[Mapping[str, Any]], documents: Mapping[str, Sequence[str]] | None
) -> None:
    ids = Counter(str(r.get("annotation_id")) for r in results)
    repeated = sorted(k for k, n in ids.items() if n > 1)
    if repeated:
        raise ValueError(f"annotation ids appear more than once in the results: {repeated[:5]}")
    for field in (
        "classification",
        "comprehensiveness_classification_scores",
        "sufficiency_classification_scores",
    ):
        have = sum(r.get(field) is not None for r in results)
        if 0 < have < len(results):
            raise ValueError(
                f"{have} of {len(results)} results have {field!r}: give it for all or none"
            )
    for res in results:
        where = f"annotation {res.get('annotation_id')!r}"
        if "annotation_id" not in res:
            raise ValueError("a result has no 'annotation_id'")
        if (res.get("classification") is None) != (res.get("classification_scores") is None):
            raise ValueError(f"{where}: 'classification' and 'classification_scores' go together")
        seen: set[str] = set()
        for rat in res.get("rationales") or []:
            docid = str(rat["docid"])
            if docid in seen:
                raise ValueError(f"{where}: document {docid!r} appears twice in 'rationales'")
            seen.add(docid)
            if documents is not None and docid not in documents:
                raise ValueError(f"{where}: unknown document {docid!r}")
            length = None if documents is None else len(documents[docid])
            spans = {
                (int(h["start_token"]), int(h["end_token"]))
                for h in rat.get("hard_rationale_predictions") or []
            }
            for start, end in spans:
                if not 0 <= start <= end or (length is not None and end > length):
                    raise ValueError(
                        f"{where}, document {docid!r}: impossible span [{start}, {end})"
                    )
            # Distinct spans must not share a token (identical duplicates collapse above).
            reach = 0
            for start, end in sorted(s for s in spans if s[0] < s[1]):
                if start < reach:
                    raise ValueError(
                        f"{where}, document {docid!r}: overlapping hard rationale spans"
                    )
                reach = max(reach, end)
            soft = rat.get("soft_rationale_predictions")
            if soft is not None and length is not None and len(soft) != length:
                raise ValueError(
                    f"{where}, document {docid!r}: {len(soft)} soft scores for a {length}-token document"
                )


def score_results(
    results: Sequence[Mapping[str, Any]],
    gold: Sequence[Annotation | Mapping[str, Any]],
    documents: Mapping[str, Sequence[str]] | None = None,
    *,
    iou_thresholds: Sequence[float] = (0.5,),
    aopc_thresholds: Sequence[float] = DEFAULT_AOPC_THRESHOLDS,
) -> dict[str, Any]:
    """Score ERASER results lines against gold annotations, as the ERASER scorer does.

    ``documents`` maps docid → whitespace tokens; without it a document's length is taken
    from its soft scores (and spans are not checked against it). Hard-rationale metrics count
    every gold annotation (a missing result is a miss); soft metrics count the documents the
    results score; classification metrics need a result for every gold annotation.
    See the module docstring for the returned layout. Raises ``ValueError`` on bad input.
    """
    golds = [g if isinstance(g, Annotation) else Annotation.model_validate(g) for g in gold]
    if not results:
        raise ValueError("no results to score")
    _check_results(results, documents)
    truth_spans = _gold_spans(golds)
    scores: dict[str, Any] = {}

    rationales = [
        (str(res["annotation_id"]), rat) for res in results for rat in res.get("rationales") or []
    ]
    if any(rat.get("hard_rationale_predictions") is not None for _, rat in rationales):
        pred_spans: dict[Key, set[Span]] = {}
        for ann_id, rat in rationales:
            for h in rat.get("hard_rationale_predictions") or []:
                key = (ann_id, str(rat["docid"]))
                pred_spans.setdefault(key, set()).add((int(h["start_token"]), int(h["end_token"])))
        scores["iou_scores"] = iou_f1(truth_spans, pred_spans, iou_thresholds)
        scores["rationale_prf"] = instance_prf(truth_spans, pred_spans)
        scores["token_prf"] = token_prf(truth_spans, pred_spans)

    with_soft = [(a, r) for a, r in rationales if r.get("soft_rationale_predictions") is not None]
    if with_soft:
        if len(with_soft) != len(rationales):
            raise ValueError("soft_rationale_predictions must be given for every document or none")
        soft_truth: dict[Key, list[int]] = {}
        soft_scores: dict[Key, list[float]] = {}
        for ann_id, rat in with_soft:
            key = (ann_id, str(rat["docid"]))
            soft_scores[key] = [float(x) for x in rat["soft_rationale_predictions"]]
            length = len(soft_scores[key]) if documents is None else len(documents[key[1]])
            mask = [0] * length
            for start, end in truth_spans.get(key, ()):
                if end > length:
                    raise ValueError(
                        f"gold span [{start}, {end}) of {key} is past the document's {length} tokens"
                    )
                mask[start:end] = [1] * (end - start)
            soft_truth[key] = mask
        scores["token_soft_metrics"] = soft_token_scores(soft_truth, soft_scores)

    classification = _classification_scores(results, golds, aopc_thresholds)
    if classification:
        scores["classification_scores"] = classification
    return scores


def _classification_scores(
    results: Sequence[Mapping[str, Any]],
    golds: Sequence[Annotation],
    aopc_thresholds: Sequence[float],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if results[0].get("classification") is None:
        return out
    by_id = {str(r["annotation_id"]): r for r in results}
    if golds and all(g.classification is not None for g in golds):
        missing = [g.annotation_id for g in golds if g.annotation_id not in by_id]
        if missing:
            raise ValueError(f"{len(missing)} gold annotations have no result, e.g. {missing[:3]}")
        truth = [str(g.classification) for g in golds]
        predicted = [str(by_id[g.annotation_id]["classification"]) for g in golds]
        report = classification_report(truth, predicted)
        out["accuracy"] = report["accuracy"]
        out["prf"] = report

    def predicted_prob(res: Mapping[str, Any], field: str) -> float:
        dist = res[field]
        if res["classification"] not in dist:
            raise ValueError(
                f"annotation {res['annotation_id']!r}: {field} has no score for its classification"
            )
        return float(dist[res["classification"]])

    for name, field in (
        ("comprehensiveness", "comprehensiveness_classification_scores"),
        ("sufficiency", "sufficiency_classification_scores"),
    ):
        if results[0].get(field) is None:
            continue
        full = [predicted_prob(r, "classification_scores") for r in results]
        out[name] = _mean_difference(full, [predicted_prob(r, field) for r in results])
        out[f"{name}_entropy"] = float(
            np.mean(
                [
                    entropy(list(r["classification_scores"].values()))
                    - entropy(list(r[field].values()))
                    for r in results
                ]
            )
        )
        kls = []
        for r in results:
            labels = list(r["classification_scores"])
            if set(labels) != set(r[field]):
                raise ValueError(
                    f"annotation {r['annotation_id']!r}: {field} and classification_scores differ in labels"
                )
            kls.append(
                kl_divergence(
                    [r[field][k] for k in labels], [r["classification_scores"][k] for k in labels]
                )
            )
        out[f"{name}_kl"] = float(np.mean(kls))

    if results[0].get("thresholded_scores") is not None:
        thresholds = sorted(aopc_thresholds)
        out["aopc_thresholds"] = [float(t) for t in aopc_thresholds]
        for name, field in (
            ("comprehensiveness", "comprehensiveness_classification_scores"),
            ("sufficiency", "sufficiency_classification_scores"),
        ):
            deltas = []
            for r in results:
                kept = sorted(
                    (s for s in r.get("thresholded_scores") or [] if s["threshold"] in thresholds),
                    key=lambda s: s["threshold"],
                )
                if len(kept) != len(thresholds):
                    raise ValueError(
                        f"annotation {r['annotation_id']!r}: thresholded_scores must cover the thresholds {thresholds}"
                    )
                full = predicted_prob(r, "classification_scores")
                deltas.append([full - float(s[field][r["classification"]]) for s in kept])
            out[f"{name}_aopc"], out[f"{name}_aopc_points"] = aopc(deltas)
    return out


def summary(scores: Mapping[str, Any]) -> dict[str, float]:
    """The headline numbers of a :func:`score_results` dict, flat (keys only where present):
    ``token_f1`` / ``token_p`` / ``token_r`` (instance macro), ``token_f1_micro``,
    ``iou_f1`` (macro, first threshold), ``auprc``, ``accuracy``, ``macro_f1``,
    ``comprehensiveness``, ``sufficiency``."""
    flat: dict[str, float] = {}
    if "token_prf" in scores:
        macro = scores["token_prf"]["instance_macro"]
        flat |= {"token_p": macro["p"], "token_r": macro["r"], "token_f1": macro["f1"]}
        flat["token_f1_micro"] = scores["token_prf"]["instance_micro"]["f1"]
    if scores.get("iou_scores"):
        flat["iou_f1"] = scores["iou_scores"][0]["macro"]["f1"]
    if "token_soft_metrics" in scores:
        flat["auprc"] = scores["token_soft_metrics"]["auprc"]
    cls = scores.get("classification_scores", {})
    if "accuracy" in cls:
        flat["accuracy"] = cls["accuracy"]
        flat["macro_f1"] = cls["prf"]["macro avg"]["f1-score"]
    for name in ("comprehensiveness", "sufficiency"):
        if name in cls:
            flat[name] = cls[name]
    return flat
