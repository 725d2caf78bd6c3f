"""Batched inference: a trained run dir → per-word rationale masks, soft scores and labels.

Words past ``max_len`` are never selected (mask 0, score 0); the appended query
of pair tasks is never part of the rationale. Output records follow ERASER:
annotation lines (``evidences`` spans over the document's whitespace tokens, the
input of Rational LAMOL's CCI) and results lines (``hard_rationale_predictions``,
``soft_rationale_predictions``, ``classification``, ``classification_scores``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from invrat.config import SELECTIONS, InvRatConfig
from invrat.embeddings import initial_embeddings
from invrat.game import RUN_FILES, build_players, length_sorted_batches
from invrat.model import inference_rationale, predictor_input_mask
from invrat.vocab import Vocab, collate, encode
from rationale_commons.eraser_io import examples_to_annotations
from rationale_commons.errors import DataError, first_line
from rationale_commons.records import Annotation, Example
from rationale_commons.runtime import autocast, choose_device, load_safetensors, read_json
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
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise DataError("run dir not found", path=run_dir)
        missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
        if missing:
            raise DataError(f"not an invrat run dir (missing {', '.join(missing)})", path=run_dir)
        try:
            self.config = InvRatConfig.model_validate(read_json(run_dir / "config.json"))
            self.vocab = Vocab.load(run_dir / "vocab.json")
            self.labels: list[str] = read_json(run_dir / "labels.json")
        except DataError:
            raise
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise DataError(f"unreadable run dir: {exc}".splitlines()[0], path=run_dir) from None
        state = load_safetensors(run_dir / "model.safetensors")  # a DataError naming the file
        if selection is not None:
            if selection not in SELECTIONS:
                raise DataError(f"selection must be one of {', '.join(map(repr, SELECTIONS))}, got {selection!r}")
            self.config = self.config.model_copy(update={"selection": selection})
        try:
            dim = state["g.encoder.forward_gru.weight_ih_l0"].shape[1]  # word vector size, whatever its source
            n_envs = state["fe.encoder.forward_gru.weight_ih_l0"].shape[1] - dim
        except KeyError as exc:
            raise DataError(f"not invrat players (no tensor {exc})", path=run_dir / "model.safetensors") from None
        cfg = self.config.model_copy(update={"embedding_dim": dim})
        self.device = choose_device(device or self.config.device)
        # a table's vectors are in the state; a frozen encoder is not saved and comes from its package
        words = initial_embeddings(cfg, self.vocab)[0] if cfg.embedding == "minilm" else None
        self.players = build_players(cfg, len(self.vocab), len(self.labels), n_envs, words)
        try:
            self.players.load_state_dict(state)
        except RuntimeError as exc:  # tensors of other shapes: a model.safetensors of another run
            raise DataError(f"does not match the run's config ({first_line(exc)})",
                            path=run_dir / "model.safetensors") from None
        self.players.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, examples: Sequence[Example], batch_size: int | None = None) -> list[Rationale]:
        cfg = self.config
        encoded = [encode(ex, self.vocab, max_len=cfg.max_len, max_query_len=cfg.max_query_len) for ex in examples]
        out: list[Rationale | None] = [None] * len(examples)
        for idx in length_sorted_batches(encoded, batch_size or cfg.eval_batch_size):
            b = collate([encoded[i] for i in idx]).to(self.device)
            with autocast(self.device, cfg.precision):
                logits = self.players["g"](b.ids, b.lengths).float()
                z, probs = inference_rationale(logits, b.doc_mask, selection=cfg.selection, alpha=cfg.alpha)
                zin = predictor_input_mask(z, b.doc_mask, b.real_mask)
                label_probs = self.players["fi"](b.ids, b.lengths, zin, b.real_mask).float().softmax(-1)
            z, probs, label_probs = z.cpu(), probs.cpu(), label_probs.cpu()
            for row, i in enumerate(idx):
                ex, n = examples[i], encoded[i].n_doc
                pad = len(ex.words) - n
                p = label_probs[row].tolist()
                out[i] = Rationale(
                    id=ex.id,
                    docid=ex.document_id,
                    mask=[int(v > 0.5) for v in z[row, :n].tolist()] + [0] * pad,
                    scores=[round(v, 5) for v in probs[row, :n].tolist()] + [0.0] * pad,
                    label=self.labels[max(range(len(p)), key=p.__getitem__)],
                    label_scores={lab: round(v, 6) for lab, v in zip(self.labels, p, strict=False)},
                )
        return out  # type: ignore[return-value]


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
