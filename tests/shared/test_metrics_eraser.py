"""ERASER metrics: hand-computed cases, tricky inputs, and scikit-learn/scipy as oracles."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rationale_commons.metrics.eraser import (
    auprc,
    average_precision,
    classification_report,
    comprehensiveness,
    entropy,
    instance_prf,
    iou_f1,
    kl_divergence,
    roc_auc,
    score_results,
    soft_token_scores,
    sufficiency,
    summary,
    token_prf,
)
from rationale_commons.records import Annotation

approx = pytest.approx


def ann(aid: str, label: str | None, *spans: tuple[str, int, int]) -> Annotation:
    """An annotation with one evidence group per span (docid, start, end)."""
    return Annotation(
        annotation_id=aid,
        classification=label,
        evidences=[[{"docid": d, "start_token": s, "end_token": e}] for d, s, e in spans],
    )


def result(aid: str, docs: dict[str, list[tuple[int, int]]], **extra: object) -> dict:
    rationales = [
        {
            "docid": d,
            "hard_rationale_predictions": [{"start_token": s, "end_token": e} for s, e in spans],
        }
        for d, spans in docs.items()
    ]
    return {"annotation_id": aid, "rationales": rationales, **extra}


# ----------------------------------------------------------------------------- token P/R/F1


def test_token_prf_single_document() -> None:
    # gold [2,5) = {2,3,4}; pred [3,7) = {3,4,5,6}; overlap {3,4}
    # p = 2/4, r = 2/3, f1 = 2 * (1/2)(2/3) / (1/2 + 2/3) = 4/7
    out = token_prf({("a", "d"): [(2, 5)]}, {("a", "d"): [(3, 7)]})
    expected = {"p": 0.5, "r": 2 / 3, "f1": 4 / 7}
    assert out == {"instance_micro": approx(expected), "instance_macro": approx(expected)}


# Three annotations, one document each:
#   a/d1: gold [0,4) = {0,1,2,3}, pred [0,2) = {0,1}  -> p 1, r 1/2, f1 2/3
#   b/d2: gold [0,2) = {0,1},     pred [5,11)         -> p 0, r 0,   f1 0
#   c/d3: gold [0,3),             no result at all    -> p 0, r 0,   f1 0 (still counted)
GOLD_B = [
    ann("a", "pos", ("d1", 0, 4)),
    ann("b", "neg", ("d2", 0, 2)),
    ann("c", "neg", ("d3", 0, 3)),
]
PRED_B = {("a", "d1"): [(0, 2)], ("b", "d2"): [(5, 11)]}
TRUTH_B = {("a", "d1"): [(0, 4)], ("b", "d2"): [(0, 2)], ("c", "d3"): [(0, 3)]}


def test_token_prf_macro_averages_f1s_and_counts_missing_results() -> None:
    out = token_prf(TRUTH_B, PRED_B)
    # macro: p (1+0+0)/3, r (1/2)/3, f1 = mean of F1s = (2/3)/3 (not the F1 of the means)
    assert out["instance_macro"] == approx({"p": 1 / 3, "r": 1 / 6, "f1": 2 / 9})
    # micro: 2 hits, 8 predicted tokens, 9 gold tokens -> p 1/4, r 2/9, f1 = 4/17
    assert out["instance_micro"] == approx({"p": 0.25, "r": 2 / 9, "f1": 4 / 17})


def test_rationale_prf_is_exact_span_match() -> None:
    # gold {(0,2),(5,7)}, pred {(0,2),(8,9)}: one exact match -> p = r = f1 = 1/2
    out = instance_prf({("a", "d"): {(0, 2), (5, 7)}}, {("a", "d"): {(0, 2), (8, 9)}})
    assert out["instance_micro"] == approx({"p": 0.5, "r": 0.5, "f1": 0.5})


def test_duplicate_spans_count_once() -> None:
    once = token_prf({("a", "d"): [(0, 4)]}, {("a", "d"): [(1, 3)]})
    twice = token_prf({("a", "d"): [(0, 4), (0, 4)]}, {("a", "d"): [(1, 3), (1, 3)]})
    assert once == twice
    assert iou_f1({("a", "d"): [(0, 4)]}, {("a", "d"): [(0, 3), (0, 3)]}) == iou_f1(
        {("a", "d"): [(0, 4)]}, {("a", "d"): [(0, 3)]}
    )


def test_empty_predictions_and_empty_gold() -> None:
    zero = {"p": 0.0, "r": 0.0, "f1": 0.0}
    # Nothing predicted: precision is 0 (the reference divided by zero), recall 0.
    assert token_prf(TRUTH_B, {}) == {"instance_micro": zero, "instance_macro": zero}
    # Nothing gold: recall 0, and precision 0 because no predicted token is gold.
    assert token_prf({}, PRED_B) == {"instance_micro": zero, "instance_macro": zero}
    assert token_prf({}, {}) == {"instance_micro": zero, "instance_macro": zero}
    # Empty span lists and zero-width spans create no key.
    assert token_prf(
        {("a", "d"): [(0, 2)]}, {("a", "d"): [(1, 2)], ("b", "e"): [(3, 3)]}
    ) == token_prf({("a", "d"): [(0, 2)]}, {("a", "d"): [(1, 2)]})
    assert iou_f1({}, {})[0]["micro"] == zero


# ----------------------------------------------------------------------------- IOU F1


def test_iou_f1_hand_computed() -> None:
    # a/d1: IOU([0,2), [0,4)) = 2/4 = 0.5 >= 0.5 -> 1 TP; b/d2: IOU 0; c/d3: nothing predicted.
    # micro: r = 1/3 (3 gold spans), p = 1/2 (2 predicted) -> f1 = 2/5
    # macro: r = mean(1, 0, 0) = 1/3, p = mean(1, 0) = 1/2 -> f1 of the means = 2/5
    at_half, at_six = iou_f1(TRUTH_B, PRED_B, thresholds=(0.5, 0.6))
    assert at_half["threshold"] == 0.5
    assert at_half["micro"] == approx({"p": 0.5, "r": 1 / 3, "f1": 0.4})
    assert at_half["macro"] == approx({"p": 0.5, "r": 1 / 3, "f1": 0.4})
    assert at_six["micro"] == {"p": 0.0, "r": 0.0, "f1": 0.0}


def test_iou_macro_is_f1_of_mean_p_and_r() -> None:
    # k1: gold [0,4), preds [0,4) and [10,12) -> 1 TP: p 1/2, r 1
    # k2: gold [0,2) and [4,6), pred [0,2)    -> 1 TP: p 1,   r 1/2
    # macro p = 3/4, r = 3/4 -> f1 = 3/4; micro: 2 TP / 3 pred, 2 TP / 3 gold -> 2/3
    truth = {("k1", "d"): [(0, 4)], ("k2", "d"): [(0, 2), (4, 6)]}
    pred = {("k1", "d"): [(0, 4), (10, 12)], ("k2", "d"): [(0, 2)]}
    (out,) = iou_f1(truth, pred)
    assert out["macro"] == approx({"p": 0.75, "r": 0.75, "f1": 0.75})
    assert out["micro"] == approx({"p": 2 / 3, "r": 2 / 3, "f1": 2 / 3})


def test_iou_recall_can_exceed_one_as_in_the_reference() -> None:
    # gold [0,10); predictions [0,5) and [5,10) each have IOU 1/2 with it -> 2 TPs for 1 gold span.
    (out,) = iou_f1({("a", "d"): [(0, 10)]}, {("a", "d"): [(0, 5), (5, 10)]})
    assert out["micro"] == approx({"p": 1.0, "r": 2.0, "f1": 4 / 3})


def test_iou_several_documents_per_annotation() -> None:
    # One annotation over two documents = two keys; d2's prediction IOU = 1/3 < 0.5.
    truth = {("a", "d1"): [(0, 2)], ("a", "d2"): [(0, 3)]}
    pred = {("a", "d1"): [(0, 2)], ("a", "d2"): [(2, 3)]}
    (out,) = iou_f1(truth, pred)
    assert out["micro"] == approx({"p": 0.5, "r": 0.5, "f1": 0.5})


# ----------------------------------------------------------------------------- soft scores

TRUE4 = [1, 0, 1, 0]
SCORES4 = [0.9, 0.8, 0.3, 0.1]


def test_soft_metrics_hand_computed() -> None:
    # Sorted by score: 0.9(+) 0.8(-) 0.3(+) 0.1(-)
    # precision [1, 1/2, 2/3, 1/2], recall [1/2, 1/2, 1, 1] at the four thresholds.
    # AP = sum (R_n - R_{n-1}) P_n = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert average_precision(TRUE4, SCORES4) == approx(5 / 6)
    # Trapezoids over recall from 1 to 0 (curve ends at recall 0, precision 1):
    # [1 -> 1/2] with P 2/3 -> 1/2: 1/2 * 7/12 = 7/24; [1/2 -> 0] with P 1 -> 1: 1/2 -> 19/24
    assert auprc(TRUE4, SCORES4) == approx(19 / 24)
    # ROC AUC = P(score+ > score-): (0.9>0.8, 0.9>0.1, 0.3>0.1) = 3 of 4 pairs
    assert roc_auc(TRUE4, SCORES4) == approx(0.75)


def test_soft_metrics_with_ties() -> None:
    # One threshold: precision 1/2 at recall 1, then (recall 0, precision 1).
    assert average_precision([1, 0], [0.5, 0.5]) == approx(0.5)
    assert auprc([1, 0], [0.5, 0.5]) == approx(0.75)  # (1/2 + 1) / 2
    assert roc_auc([1, 0], [0.5, 0.5]) == approx(0.5)


def test_soft_token_scores_skip_single_class_documents_for_ap_and_roc() -> None:
    truth = {("a", "d"): TRUE4, ("b", "d"): [0, 0]}
    scores = {("a", "d"): SCORES4, ("b", "d"): [0.2, 0.1]}
    out = soft_token_scores(truth, scores)
    # No positive in b/d: sklearn sets recall to 1 -> curve (1,0) -> (0,1): AUPRC 1/2.
    assert out["auprc"] == approx((19 / 24 + 0.5) / 2)
    assert out["average_precision"] == approx(5 / 6)
    assert out["roc_auc_score"] == approx(0.75)
    only_single = soft_token_scores({("b", "d"): [0, 0]}, {("b", "d"): [0.2, 0.1]})
    assert set(only_single) == {"auprc"}
    assert soft_token_scores({}, {}) == {"auprc": 0.0}


# ----------------------------------------------------------------------------- classification


def test_classification_report_hand_computed() -> None:
    # pos: TP 1, predicted 1, support 2 -> p 1, r 1/2, f1 2/3
    # neg: TP 2, predicted 3, support 2 -> p 2/3, r 1, f1 4/5
    report = classification_report(["pos", "pos", "neg", "neg"], ["pos", "neg", "neg", "neg"])
    assert report["pos"] == approx(
        {"precision": 1.0, "recall": 0.5, "f1-score": 2 / 3, "support": 2}
    )
    assert report["neg"] == approx(
        {"precision": 2 / 3, "recall": 1.0, "f1-score": 0.8, "support": 2}
    )
    assert report["accuracy"] == 0.75
    assert report["macro avg"]["f1-score"] == approx((2 / 3 + 0.8) / 2)
    assert report["weighted avg"]["precision"] == approx((1 + 2 / 3) / 2)


def test_faithfulness_hand_computed() -> None:
    assert comprehensiveness([0.9, 0.8], [0.3, 0.6]) == approx(0.4)  # mean(0.6, 0.2)
    assert sufficiency([0.9, 0.8], [0.85, 0.9]) == approx(-0.025)  # mean(0.05, -0.1)
    assert entropy([0.5, 0.5]) == approx(math.log(2))
    assert entropy([2, 0]) == 0.0  # normalized first; 0 log 0 = 0
    assert kl_divergence([0.5, 0.5], [0.9, 0.1]) == approx(0.5 * math.log(25 / 9))
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf
    with pytest.raises(ValueError):
        comprehensiveness([0.9], [0.1, 0.2])


# ----------------------------------------------------------------------------- score_results


def full_results() -> list[dict]:
    return [
        result(
            "a",
            {"d1": [(0, 2)]},
            classification="pos",
            classification_scores={"pos": 0.9, "neg": 0.1},
            comprehensiveness_classification_scores={"pos": 0.3, "neg": 0.7},
            sufficiency_classification_scores={"pos": 0.85, "neg": 0.15},
        ),
        result(
            "b",
            {"d2": [(5, 11)]},
            classification="neg",
            classification_scores={"pos": 0.2, "neg": 0.8},
            comprehensiveness_classification_scores={"pos": 0.4, "neg": 0.6},
            sufficiency_classification_scores={"pos": 0.1, "neg": 0.9},
        ),
        result(
            "c",
            {},
            classification="neg",
            classification_scores={"pos": 0.4, "neg": 0.6},
            comprehensiveness_classification_scores={"pos": 0.5, "neg": 0.5},
            sufficiency_classification_scores={"pos": 0.4, "neg": 0.6},
        ),
    ]


def test_score_results_layout_and_values() -> None:
    scores = score_results(full_results(), GOLD_B)
    assert set(scores) == {"iou_scores", "rationale_prf", "token_prf", "classification_scores"}
    assert scores["token_prf"] == token_prf(TRUTH_B, PRED_B)
    assert scores["iou_scores"] == iou_f1(TRUTH_B, PRED_B)
    cls = scores["classification_scores"]
    assert cls["accuracy"] == 1.0 and cls["prf"]["macro avg"]["f1-score"] == 1.0
    # comprehensiveness: mean(0.9-0.3, 0.8-0.6, 0.6-0.5) = 0.3; sufficiency: mean(0.05, -0.1, 0) = -0.05/3
    assert cls["comprehensiveness"] == approx(0.3)
    assert cls["sufficiency"] == approx(-0.05 / 3)
    assert "aopc_thresholds" not in cls
    json.dumps(scores)  # JSON-able
    flat = summary(scores)
    assert flat["token_f1"] == approx(2 / 9) and flat["iou_f1"] == approx(0.4)
    assert flat["accuracy"] == 1.0 and flat["comprehensiveness"] == approx(0.3)
    assert "auprc" not in flat


def test_score_results_soft_scores_and_documents() -> None:
    docs = {"d1": ["w"] * 4}
    gold = [ann("a", "pos", ("d1", 0, 1), ("d1", 2, 3))]  # gold mask [1, 0, 1, 0]
    res = [
        {
            "annotation_id": "a",
            "rationales": [{"docid": "d1", "soft_rationale_predictions": SCORES4}],
        }
    ]
    scores = score_results(res, gold, docs)
    assert set(scores) == {"token_soft_metrics"}  # no hard predictions, no classification
    assert scores["token_soft_metrics"] == approx(
        {"auprc": 19 / 24, "average_precision": 5 / 6, "roc_auc_score": 0.75}
    )
    assert score_results(res, gold) == scores  # lengths from the soft scores
    with pytest.raises(ValueError, match="soft scores"):
        score_results(res, gold, {"d1": ["w"] * 5})


def test_score_results_all_empty_predictions_are_scored() -> None:
    # The reference skipped hard scoring when the FIRST result had no span; we score zeros.
    res = [result("a", {"d1": []}), result("b", {"d2": [(0, 1)]})]
    scores = score_results(res, GOLD_B)
    # b/d2: gold {0,1}, pred {0}: p 1, r 1/2, f1 2/3; a, c count as zeros -> macro f1 = 2/9
    assert scores["token_prf"]["instance_macro"]["f1"] == approx(2 / 9)
    none = score_results([result("a", {"d1": []})], GOLD_B)
    assert none["token_prf"]["instance_micro"] == {"p": 0.0, "r": 0.0, "f1": 0.0}


def test_score_results_multidoc_and_duplicates_and_int_ids() -> None:
    gold = [ann("7", None, ("d1", 0, 2), ("d2", 1, 3), ("d1", 0, 2))]  # duplicate evidence group
    res = [
        {
            "annotation_id": 7,
            "rationales": [
                {
                    "docid": "d1",
                    "hard_rationale_predictions": [{"start_token": 0, "end_token": 2}] * 2,
                },
                {"docid": "d2", "hard_rationale_predictions": [{"start_token": 1, "end_token": 3}]},
            ],
        }
    ]
    scores = score_results(res, gold)
    assert scores["token_prf"]["instance_macro"] == {"p": 1.0, "r": 1.0, "f1": 1.0}
    assert scores["iou_scores"][0]["micro"] == {"p": 1.0, "r": 1.0, "f1": 1.0}


def test_score_results_aopc() -> None:
    res = full_results()[:1]
    res[0]["thresholded_scores"] = [
        {
            "threshold": t,
            "comprehensiveness_classification_scores": {"pos": c, "neg": 1 - c},
            "sufficiency_classification_scores": {"pos": s, "neg": 1 - s},
        }
        for t, c, s in [(0.5, 0.2, 0.9), (0.1, 0.6, 0.5)]
    ]
    cls = score_results(res, GOLD_B[:1], aopc_thresholds=(0.1, 0.5))["classification_scores"]
    # comprehensiveness deltas: 0.9-0.6 (t=0.1), 0.9-0.2 (t=0.5) -> points [0.3, 0.7], mean 0.5
    assert cls["comprehensiveness_aopc_points"] == approx([0.3, 0.7])
    assert cls["comprehensiveness_aopc"] == approx(0.5)
    assert cls["sufficiency_aopc_points"] == approx([0.4, 0.0])
    with pytest.raises(ValueError, match="thresholded_scores"):
        score_results(res, GOLD_B[:1])  # default thresholds are not all there


@pytest.mark.parametrize(
    "bad, match",
    [
        ([result("a", {"d1": [(0, 3), (2, 4)]})], "overlapping"),
        ([result("a", {"d1": [(0, 9)]})], "impossible span"),
        ([result("a", {"d1": [(3, 2)]})], "impossible span"),
        ([result("a", {}), result("a", {})], "more than once"),
        (
            [
                result("a", {}, classification="pos", classification_scores={"pos": 1.0}),
                result("b", {}),
            ],
            "all or none",
        ),
        ([result("a", {}, classification="pos")], "go together"),
        ([result("zz", {"nope": []})], "unknown document"),
    ],
)
def test_score_results_rejects_bad_input(bad: list[dict], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        score_results(bad, GOLD_B, {"d1": ["w"] * 5, "d2": ["w"] * 12, "d3": ["w"] * 4})


def test_classification_needs_a_result_per_gold_annotation() -> None:
    with pytest.raises(ValueError, match="no result"):
        score_results(full_results()[:2], GOLD_B)


# ----------------------------------------------------------------------------- oracles


@pytest.mark.filterwarnings("ignore:No positive class found")
def test_soft_metrics_match_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 2, size=n)
        if trial % 5 == 0:
            y[:] = 0
            y[0] = 1
        # Coarse scores make ties common.
        s = rng.integers(0, 6, size=n) / 5 if trial % 2 else rng.random(n)
        p, r, _ = metrics.precision_recall_curve(y, s)
        assert auprc(y, s) == approx(metrics.auc(r, p), abs=1e-12)
        assert average_precision(y, s) == approx(metrics.average_precision_score(y, s), abs=1e-12)
        if 0 < y.sum() < n:
            assert roc_auc(y, s) == approx(metrics.roc_auc_score(y, s), abs=1e-12)


def test_auprc_without_positives_matches_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    y, s = [0, 0, 0], [0.3, 0.1, 0.3]
    with pytest.warns(UserWarning):
        p, r, _ = metrics.precision_recall_curve(y, s)
    assert auprc(y, s) == approx(metrics.auc(r, p))


def test_classification_report_matches_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    labels = ["a", "b", "c"]
    for _ in range(15):
        gold = [labels[i] for i in rng.integers(0, 3, size=30)]
        pred = [labels[i] for i in rng.integers(0, 3, size=30)]
        ours = classification_report(gold, pred)
        theirs = metrics.classification_report(gold, pred, output_dict=True, zero_division=0)
        assert ours.keys() == theirs.keys()
        assert ours["accuracy"] == approx(theirs["accuracy"])
        for key in [*labels, "macro avg", "weighted avg"]:
            assert ours[key] == approx(theirs[key], abs=1e-12)


def test_entropy_and_kl_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    for _ in range(50):
        p, q = rng.random(4), rng.random(4)
        p[rng.integers(0, 4)] = 0.0
        assert entropy(p) == approx(float(stats.entropy(p)), abs=1e-12)
        assert kl_divergence(p, q) == approx(float(stats.entropy(p, q)), abs=1e-12)
