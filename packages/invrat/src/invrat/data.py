"""The game's data: train and dev examples (dev carved from train when there is no val split),
as ids, label indices and environment indices, in batches."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from invrat.config import InvRatConfig
from invrat.multiple_choice import refuse_multiple_choice
from invrat.vocab import Batch, Encoded, Vocab, collate, encode
from rationale_commons.errors import DataError
from rationale_commons.records import Example, Splits

log = logging.getLogger("invrat")

#: A dev set smaller than this gives dev accuracies too coarse to select a model by: a warning.
MIN_DEV_EXAMPLES = 10


@dataclass
class Prepared:
    """A split as ids, label indices and env indices (None where the split has no environments), and
    the generator's precomputed word features of each sequence (``embedding = "minilm_cached"``)."""

    encoded: list[Encoded]
    labels: list[int]
    envs: list[int] | None
    features: list[torch.Tensor] | None = None

    def batch(self, idx: Sequence[int]) -> Batch:
        return collate(
            [self.encoded[i] for i in idx],
            [self.labels[i] for i in idx],
            None if self.envs is None else [self.envs[i] for i in idx],
            None if self.features is None else [self.features[i] for i in idx],
        )


def prepare(
    examples: Sequence[Example], vocab: Vocab, label_index: dict[str, int], config: InvRatConfig, envs: list[int] | None
) -> Prepared:
    unknown = sorted({ex.label for ex in examples} - set(label_index))
    if unknown:
        raise DataError(
            f"label(s) {unknown[:5]} do not occur in the training set (known: {sorted(label_index)})", field="label"
        )
    return Prepared(
        [encode(ex, vocab, max_len=config.data.max_len, max_query_len=config.data.max_query_len) for ex in examples],
        [label_index[ex.label] for ex in examples],
        envs,
    )


def length_sorted_batches(encoded: Sequence[Encoded], batch_size: int) -> list[list[int]]:
    """Index batches of similar length (less padding at inference), covering every index once."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def train_and_dev(splits: Splits, seed: int) -> tuple[list[Example], list[Example]]:
    """The training examples and the dev examples that select the model (val, else carved from train)."""
    train = list(splits.train)
    if not train:
        raise DataError("the training split is empty", field="train")
    refuse_multiple_choice(train)
    val = list(splits.val)
    if not val:  # selection needs held-out data
        train, val = split_dev(train, seed)
    if len(val) < MIN_DEV_EXAMPLES:
        log.warning("invrat: warning: the dev set has %d example(s) (fewer than %d): its accuracy, which selects "
                    "the model, is too coarse to trust", len(val), MIN_DEV_EXAMPLES)
    return train, val


def split_dev(train: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """(train, dev) when the data has no val split: 10% of train, carved deterministically.
    Refused when no example could be held out (the dev set would be the training set)."""
    if len(train) < 2:
        raise DataError(
            f"the training split has {len(train)} example(s) and there is no val split: model selection needs "
            "held-out examples (give a val split, or at least 2 training examples)", field="val"
        )
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    cut = max(1, len(train) // 10)
    return [train[i] for i in order[cut:]], [train[i] for i in order[:cut]]
