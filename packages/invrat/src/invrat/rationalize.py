"""Batched inference: a trained run dir → per-word rationale masks, soft scores and labels.

A document longer than ``max_len`` words is read in consecutive windows of ``max_len`` words
(each with the query), whose rationales are joined and whose label probabilities are averaged:
every word can be selected. The appended query of pair tasks is never part of the rationale. Output records follow ERASER:
annotation lines (``evidences`` spans over the document's whitespace tokens, the
input of Rational LAMOL's CCI) and results lines (``hard_rationale_predictions``,
``soft_rationale_predictions``, ``classification``, ``classification_scores``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from invrat.cached_features import FrozenFeatures
from invrat.config import SELECTIONS
from invrat.data import length_sorted_batches
from invrat.model import inference_rationale, predictor_input_mask
from invrat.trained_run import load_run
from invrat.vocab import collate, encode
from rationale_commons.eraser_io import examples_to_annotations
from rationale_commons.errors import DataError
from rationale_commons.records import Annotation, Example
from rationale_commons.runtime import autocast, choose_device
from rationale_commons.spans import mask_to_spans


@dataclass
class Rationale:
    """One example's rationale: a 0/1 ``mask`` and generator probability ``scores`` per document word."""

    id: str
    docid: str
    mask: list[int]
    scores: list[float]
    label: str
    label_scores: dict[str, float]


class Rationalizer:
    """A loaded run dir: the generator and f_i, ready to rationalize batches of examples."""

    def __init__(self, run_dir: str | Path, *, device: str | None = None, selection: str | None = None) -> None:
        run = load_run(Path(run_dir))
        self.config, self.vocab, self.labels, self.players = run.config, run.vocab, run.labels, run.players
        if selection is not None:
            if selection not in SELECTIONS:
                raise DataError(f"selection must be one of {', '.join(map(repr, SELECTIONS))}, got {selection!r}")
            self.config = self.config.model_copy(update={"selection": selection})
        self.device = choose_device(device or self.config.runtime.device)
        self.players.to(self.device)
        self.features: FrozenFeatures | None = None  # the generator's features: the cache training filled
        if self.config.players.embedding == "minilm_cached":
            self.features = FrozenFeatures(self.vocab, self.config.runtime.cache_dir, device=self.device,
                                           progress=self.config.runtime.progress)

    @torch.no_grad()
    def __call__(self, examples: Sequence[Example], batch_size: int | None = None) -> list[Rationale]:
        cfg = self.config
        spans = [(i, start, min(start + cfg.data.max_len, len(ex.words)))
                 for i, ex in enumerate(examples) for start in range(0, max(1, len(ex.words)), cfg.data.max_len)]
        encoded = [encode(examples[i].model_copy(update={"words": examples[i].words[s:e], "rationale": None}), self.vocab,
                          max_len=cfg.data.max_len, max_query_len=cfg.data.max_query_len) for i, s, e in spans]
        features = None if self.features is None else self.features.sequences(encoded, "windows")
        read: list[tuple[list[float], list[float], list[float]] | None] = [None] * len(spans)  # mask, scores, labels
        for idx in length_sorted_batches(encoded, batch_size or cfg.runtime.eval_batch_size):
            b = collate([encoded[w] for w in idx], features=None if features is None else [features[w] for w in idx])
            b = b.to(self.device)
            with autocast(self.device, cfg.runtime.precision):
                logits = self.players["g"](b.ids, b.lengths, b.query_mask, b.features).float()
                z, probs = inference_rationale(logits, b.doc_mask, selection=cfg.game.selection, alpha=cfg.game.alpha)
                zin = predictor_input_mask(z, b.doc_mask, b.real_mask)
                label_probs = self.players["fi"](b.ids, b.lengths, zin, b.real_mask, query_mask=b.query_mask).float().softmax(-1)
            z, probs, label_probs = z.cpu(), probs.cpu(), label_probs.cpu()
            for row, w in enumerate(idx):
                n = encoded[w].n_doc
                read[w] = (z[row, :n].tolist(), probs[row, :n].tolist(), label_probs[row].tolist())
        windows: list[list[tuple[list[float], list[float], list[float]]]] = [[] for _ in examples]
        for (i, _, _), window in zip(spans, read, strict=True):
            windows[i].append(window)  # type: ignore[arg-type]
        return [self._joined(ex, parts) for ex, parts in zip(examples, windows, strict=True)]

    def _joined(self, ex: Example, parts: list[tuple[list[float], list[float], list[float]]]) -> Rationale:
        """One example's rationale from its windows' (in document order)."""
        p = [sum(col) / len(parts) for col in zip(*(labels for _, _, labels in parts), strict=True)]
        return Rationale(
            id=ex.id,
            docid=ex.document_id,
            mask=[int(v > 0.5) for mask, _, _ in parts for v in mask],
            scores=[round(v, 5) for _, scores, _ in parts for v in scores],
            label=self.labels[max(range(len(p)), key=p.__getitem__)],
            label_scores={lab: round(v, 6) for lab, v in zip(self.labels, p, strict=False)},
        )


def rationalize(
    run_dir: str | Path, examples: Sequence[Example], batch_size: int | None = None, *, device: str | None = None,
    selection: str | None = None,
) -> list[Rationale]:
    """Rationales for ``examples`` in their order (loads the run dir; keep a :class:`Rationalizer` to reuse it)."""
    return Rationalizer(run_dir, device=device, selection=selection)(examples, batch_size)


def to_annotations(examples: Sequence[Example], rationales: Sequence[Rationale]) -> list[Annotation]:
    """ERASER annotation records: the generated rationale as evidence spans, the example's own label."""
    if len(examples) != len(rationales):
        raise ValueError(f"{len(rationales)} rationales for {len(examples)} examples")
    return examples_to_annotations(examples, [r.mask for r in rationales])


def to_results(rationales: Sequence[Rationale]) -> list[dict]:
    """ERASER results lines (the input of the ERASER scorer and of ``invrat evaluate``)."""
    return [
        {
            "annotation_id": r.id,
            "rationales": [
                {
                    "docid": r.docid,
                    "hard_rationale_predictions": [{"start_token": s, "end_token": e} for s, e in mask_to_spans(r.mask)],
                    "soft_rationale_predictions": r.scores,
                }
            ],
            "classification": r.label,
            "classification_scores": r.label_scores,
        }
        for r in rationales
    ]
