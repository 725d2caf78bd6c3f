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


def _sliced_loss(logits, labels, weights=None):
    """The loss as it was computed before (logits sliced and copied): the reference of bit-equality."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE, reduction="none"
    )
    valid = (labels.reshape(-1) != IGNORE).float()
    w = valid if weights is None else valid * weights[:, 1:].reshape(-1)
    return (ce * w).sum() / w.sum().clamp_min(1e-8)


def test_lamol_loss_equals_the_sliced_form_bit_for_bit():
    """Shifting the labels instead of slicing the logits changes no loss value and no gradient."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from rational_lamol.lamol import lamol_loss

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=97, n_positions=16)).eval()  # no dropout
    g = torch.Generator().manual_seed(1)
    seqs = [TrainSequence(torch.randint(5, 97, (n,), generator=g).tolist(), n - 3, gen_id=2, task="a")
            for n in (9, 12, 7)]
    batch = collate(seqs, pad_id=0, ans_weight=5.0)

    loss, _ = lamol_loss(model, batch, lm_lambda=0.25)
    loss.backward()
    ours = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits = model(input_ids=torch.cat([batch.qa_ids, batch.lm_ids]),
                   attention_mask=torch.cat([batch.qa_mask, batch.lm_mask])).logits
    b = len(seqs)
    reference = _sliced_loss(logits[:b], batch.qa_labels, batch.qa_weights) + 0.25 * _sliced_loss(
        logits[b:], batch.lm_labels
    )
    reference.backward()
    assert torch.equal(loss, reference)
    assert all(torch.equal(a, p.grad) for a, p in zip(ours, model.parameters(), strict=True))


def test_learning_rate_schedule_warms_up_then_decays_to_its_floor():
    from rational_lamol.trainer import linear_schedule

    total, warmup = 10, 2
    assert [linear_schedule(s, total, warmup) for s in (0, 1)] == [0.5, 1.0]
    assert linear_schedule(2, total, warmup) == 1.0 and linear_schedule(10, total, warmup) == 0.0
    assert linear_schedule(6, total, warmup) == 0.5
    assert linear_schedule(10, total, warmup, floor=0.25) == 0.25  # decays to the floor
    assert linear_schedule(6, total, warmup, floor=0.5) == 0.75
    assert {linear_schedule(s, total, warmup, floor=1.0) for s in range(2, 11)} == {1.0}  # constant
