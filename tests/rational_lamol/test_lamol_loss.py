"""LAMOL's loss masks: QA loss only on `a EOS`, LM loss on everything after GEN."""

from __future__ import annotations

import torch

from rational_lamol.lamol import IGNORE, collate, lm_targets, qa_targets, token_loss
from rational_lamol.tasks import TrainSequence


def test_masks():
    # c c q __ans__ a EOS  ->  only a and EOS are targets
    assert qa_targets([5, 6, 7, 3, 9, 1], answer_start=4) == [IGNORE] * 4 + [9, 1]
    # GEN c q __ans__ a EOS -> GEN is never a target
    assert lm_targets([2, 5, 7, 3, 9, 1]) == [IGNORE, 5, 7, 3, 9, 1]


def test_collate_pads_and_weights():
    seqs = [TrainSequence([5, 6, 3, 9, 1], 3, gen_id=2, task="a"), TrainSequence([5, 3, 9, 1], 2, gen_id=2, task="a")]
    b = collate(seqs, pad_id=0, ans_weight=5.0)
    assert b.qa_ids.shape == b.lm_ids.shape == (2, 6)
    assert b.lm_ids[0].tolist() == [2, 5, 6, 3, 9, 1]
    assert b.qa_labels[1].tolist() == [IGNORE, IGNORE, 9, 1, IGNORE, IGNORE]
    assert b.lm_labels[1].tolist() == [IGNORE, 5, 3, 9, 1, IGNORE]
    assert b.qa_weights[0, 3] == 5.0 and b.qa_weights[0, 4] == 1.0


def test_token_loss_only_counts_targets():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 10)
    labels = torch.tensor([[IGNORE, IGNORE, 3, 4]])
    expected = torch.nn.functional.cross_entropy(logits[0, 1:3], torch.tensor([3, 4]))
    assert torch.allclose(token_loss(logits, labels), expected)
    # changing logits at a position whose target is ignored changes nothing
    logits2 = logits.clone()
    logits2[0, 0] += 100
    assert torch.allclose(token_loss(logits2, labels), expected)
