"""What a rationale and a label must beat (issue 21): the same number of words per document drawn at
random (seeded) or taken from the front, and the labels (accuracy, macro F1) of a full-text TF-IDF
logistic regression and of the majority class. ``invrat evaluate`` scores them beside the predictions
with the same metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rationale_commons.metrics.eraser import classification_report
from rationale_commons.records import Example
from rationale_commons.spans import mask_to_spans

BASELINE_SEED = 0


def _hard_count(rationale: Mapping[str, Any], n: int) -> int:
    """Words of a document a prediction selects (its hard spans, clipped to the document)."""
    covered = {t for h in rationale.get("hard_rationale_predictions") or [] for t in range(h["start_token"], min(h["end_token"], n))}
    return len(covered)


def _result_line(row: Mapping[str, Any], rationales: list[dict[str, Any]]) -> dict[str, Any]:
    return {"annotation_id": row["annotation_id"], "rationales": rationales}


def _from_scores(docid: str, scores: np.ndarray, k: int) -> dict[str, Any]:
    """A rationale of the ``k`` highest ``scores`` (hard spans) with the scores as soft predictions."""
    mask = np.zeros(len(scores), dtype=int)
    mask[np.argsort(-scores, kind="stable")[:k]] = 1
    return {
        "docid": docid,
        "hard_rationale_predictions": [{"start_token": s, "end_token": e} for s, e in mask_to_spans(mask.tolist())],
        "soft_rationale_predictions": scores.tolist(),
    }


def selection_baselines(
    results: Sequence[Mapping[str, Any]], documents: Mapping[str, Sequence[str]], seed: int = BASELINE_SEED
) -> dict[str, list[dict[str, Any]]]:
    """Results lines selecting, in every predicted document, as many words as the prediction:
    ``random`` (uniform, seeded; random soft scores) and ``first_k`` (the first words; scores
    falling with the position)."""
    return {"random": random_selection(results, documents, seed), "first_k": first_k_selection(results, documents)}


def random_selection(
    results: Sequence[Mapping[str, Any]], documents: Mapping[str, Sequence[str]], seed: int = BASELINE_SEED
) -> list[dict[str, Any]]:
    """``selection_baselines(...)["random"]`` alone."""
    rng = np.random.default_rng(seed)
    return _selection(results, documents, lambda n: rng.random(n))


def first_k_selection(results: Sequence[Mapping[str, Any]], documents: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """``selection_baselines(...)["first_k"]`` alone."""
    return _selection(results, documents, lambda n: 1.0 - np.arange(n) / max(1, n))


def _selection(
    results: Sequence[Mapping[str, Any]], documents: Mapping[str, Sequence[str]], scores_of: Callable[[int], np.ndarray]
) -> list[dict[str, Any]]:
    """One results line per prediction, its rationales replaced by the top-k words of ``scores_of(n)``
    in each of its documents (k: the prediction's own count there)."""
    lines = []
    for row in results:
        rats = []
        for rat in row.get("rationales") or []:
            docid = str(rat["docid"])
            n = len(documents[docid])
            rats.append(_from_scores(docid, scores_of(n), _hard_count(rat, n)))
        lines.append(_result_line(row, rats))
    return lines


def random_spread(draws: Sequence[Mapping[str, float]], observed: Mapping[str, float]) -> dict[str, Any]:
    """Per metric of the ``draws`` of the random selection (one summary per seed, all with the same
    keys): ``mean`` (what ``random`` reports), the central 95% of the draws (``low``, ``high``) and,
    where ``observed`` has the metric, ``at_or_above``: the share of draws scoring at least as high
    (a one-sided randomization p value; 0 says p < 1/n)."""
    out: dict[str, Any] = {"n": len(draws)}
    for key in draws[0] if draws else ():
        values = np.array([d[key] for d in draws], dtype=float)
        low, high = np.percentile(values, [2.5, 97.5])
        out[key] = {"mean": float(values.mean()), "low": float(low), "high": float(high)}
        if key in observed:
            out[key]["at_or_above"] = float((values >= observed[key]).mean())
    return out


def _full_text(ex: Example) -> str:
    return " ".join(ex.words) + ("" if not ex.query else " " + ex.query)


def _label_scores(name: str, gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    report = classification_report(list(gold), list(predicted))
    return {f"{name}_accuracy": report["accuracy"], f"{name}_macro_f1": report["macro avg"]["f1-score"]}


def label_baselines(train: Sequence[Example], evaluated: Sequence[Example]) -> dict[str, float]:
    """Accuracy and macro F1 on ``evaluated`` of the majority training label and of a TF-IDF (word
    1-2 grams) logistic regression trained on the full texts (and queries) of ``train``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    gold = [ex.label for ex in evaluated]
    majority = Counter(ex.label for ex in train).most_common(1)[0][0]
    out = _label_scores("majority", gold, [majority] * len(gold))
    if len({ex.label for ex in train}) < 2:  # nothing to fit: it is the majority class
        return out | _label_scores("tfidf_logreg", gold, [majority] * len(gold))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, token_pattern=r"\S+")
    model = LogisticRegression(max_iter=1000)
    model.fit(vectorizer.fit_transform([_full_text(ex) for ex in train]), [ex.label for ex in train])
    predicted = model.predict(vectorizer.transform([_full_text(ex) for ex in evaluated]))
    return out | _label_scores("tfidf_logreg", gold, [str(p) for p in predicted])
