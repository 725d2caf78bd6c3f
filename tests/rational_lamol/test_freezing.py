"""Critical freezing: frozen blocks and heads stay bit-identical through real AdamW training
(weight decay 0.1, a warm-up/decay LR schedule), on a tiny GPT-2 and a tiny Llama (GQA)."""

from __future__ import annotations

import pytest
import torch

from rational_lamol.adapters import adapter_for
from rational_lamol.freezing import Freezer, FreezeSpec

VOCAB = 64  # the tiny models' vocabulary (TINY_VOCAB in conftest.py)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def train(model, callbacks=(), steps=6, optimizer=None, seed=0):
    """A few real steps: the trainer's protocol (callbacks, requires_grad filter, AdamW + schedule)."""
    for cb in callbacks:
        cb.on_train_start(model)
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 2) * max(0.1, 1 - s / steps)
    )
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, VOCAB, (4, 12), generator=g)
        loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        sched.step()
        optimizer.zero_grad()
        for cb in callbacks:
            cb.on_after_optimizer_step(model)
    return optimizer


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(before, model, name, index=(...,)):
    return not torch.equal(
        before[name][index], dict(model.named_parameters())[name].detach()[index]
    )


def assert_frozen_unchanged(before, model, spec):
    """Every parameter of the spec's blocks and every slice of its heads (K/V by the GQA rule) is
    bit-identical to ``before``; returns the model's adapter for further checks."""
    ad = adapter_for(model)
    for b in spec.blocks:
        for name, _ in ad.block_parameters(b):
            assert not changed(before, model, name), name
    frozen_slices = ad.frozen_head_slices(spec.heads)
    assert frozen_slices
    for name, _, index in frozen_slices:
        assert not changed(before, model, name, index), (name, index)
    return ad


def test_gpt2_block_and_heads_bit_identical_everything_else_moves(tiny_gpt2):
    model = tiny_gpt2(n_layer=12, n_head=4, n_embd=16, n_positions=64)
    spec = FreezeSpec(blocks=[1], heads=[(3, 2), (5, 0)])
    freezer = Freezer(model, spec)
    before = snapshot(model)
    train(model, [freezer])
    ad = assert_frozen_unchanged(before, model, spec)
    # Blocks 10 and 11 (the reference's substring bug) and all other blocks did train.
    for b in [0, 2, 3, 4, 5, 10, 11]:
        assert any(changed(before, model, n) for n, _ in ad.block_parameters(b)), b
    # The rest of the frozen heads' parameters moved: other heads' slices, the shared c_proj bias.
    for name, _, index in ad.head_slices(3, 1):
        assert changed(before, model, name, index), name
    assert changed(before, model, "transformer.h.3.attn.c_proj.bias")
    assert changed(before, model, "transformer.wte.weight")


def test_llama_gqa_rule_in_training(tiny_llama):
    model = tiny_llama(  # r = 3 query heads per KV head
        n_layer=3, n_head=6, n_kv=2, hidden=24, attention_bias=True, max_positions=64
    )
    # Block 0: all of KV head 0's query heads (0, 1, 2) -> its K/V rows freeze too.
    # Block 1: only heads 3, 4 of KV head 1 -> K/V stay trainable.  Block 2 frozen whole.
    spec = FreezeSpec(blocks=[2], heads=[(0, 0), (0, 1), (0, 2), (1, 3), (1, 4)])
    freezer = Freezer(model, spec)
    before = snapshot(model)
    train(model, [freezer])
    ad = assert_frozen_unchanged(before, model, spec)
    kv00 = ad.kv_head_slices(0, 0)
    assert kv00 and all(not changed(before, model, n, i) for n, _, i in kv00)
    for n, _, i in ad.kv_head_slices(1, 1) + ad.kv_head_slices(0, 1):
        assert changed(before, model, n, i), n
    for h in (3, 4, 5):  # block 0's other query heads trained
        assert all(changed(before, model, n, i) for n, _, i in ad.head_slices(0, h))


def test_frozen_even_when_the_optimizer_holds_them_with_momentum(tiny_gpt2):
    """An optimizer built before the freeze (with Adam moments from earlier steps) and weight decay
    still moves parameters without gradients; the snapshot restore keeps them identical."""
    model = tiny_gpt2(n_layer=3, n_head=2, n_embd=8, n_positions=64)
    optimizer = train(model, steps=3)  # unfrozen warm-up: moments are non-zero
    spec = FreezeSpec(blocks=[0], heads=[(2, 1)])
    freezer = Freezer(model, spec)
    before = snapshot(model)
    train(model, [freezer], optimizer=optimizer, seed=1)
    assert_frozen_unchanged(before, model, spec)


def test_gradient_masking_alone_is_not_enough(tiny_gpt2):
    """The reference's head freeze (zeroing gradients only) lets AdamW weight decay move the weights."""
    model = tiny_gpt2(n_layer=2, n_head=2, n_embd=8, n_positions=64)
    freezer = Freezer(model, FreezeSpec(heads=[(1, 0)]))
    freezer.on_train_start(model)
    freezer.on_after_optimizer_step = lambda model: None  # disable the restore
    before = snapshot(model)
    train(model, [freezer])
    name, _, index = adapter_for(model).head_slices(1, 0)[0]
    assert changed(before, model, name, index)


def test_parameter_report_counts_exactly(tiny_gpt2):
    model = tiny_gpt2(n_layer=4, n_head=4, n_embd=16, n_positions=64)
    E, d = 16, 4
    freezer = Freezer(model, FreezeSpec(blocks=[1], heads=[(2, 0), (2, 3), (1, 2)])).apply()
    report = freezer.parameter_report()
    ad = adapter_for(model)
    block_numel = [sum(p.numel() for _, p in ad.block_parameters(b)) for b in range(4)]
    rows = {r["block"]: r for r in report["blocks"]}
    assert rows[1] == {"block": 1, "trainable": 0, "frozen": block_numel[1]}
    head = 3 * E * d + 3 * d + d * E  # c_attn columns + c_attn bias + c_proj rows
    assert rows[2] == {"block": 2, "trainable": block_numel[2] - 2 * head, "frozen": 2 * head}
    assert rows[0]["frozen"] == rows[3]["frozen"] == 0
    assert report["outside_blocks"]["frozen"] == 0
    total = sum(p.numel() for p in model.parameters())
    assert report["total"]["trainable"] + report["total"]["frozen"] == total
    assert report["spec"] == {"blocks": [1], "heads": [(1, 2), (2, 0), (2, 3)]}


def test_release_undoes_the_freeze(tiny_gpt2):
    model = tiny_gpt2(n_layer=2, n_head=2, n_embd=8, n_positions=64)
    freezer = Freezer(model, FreezeSpec(blocks=[0], heads=[(1, 1)])).apply()
    ad = adapter_for(model)
    assert not any(p.requires_grad for _, p in ad.block_parameters(0))
    freezer.release()
    assert all(p.requires_grad for p in model.parameters())
    model(torch.randint(0, VOCAB, (2, 5)), labels=torch.randint(0, VOCAB, (2, 5))).loss.backward()
    for name, p, index in ad.head_slices(1, 1):
        assert p.grad[index].abs().sum() > 0, name  # the gradient hook is gone
    assert freezer.parameter_report()["total"]["frozen"] == 0


def test_spec_validation_and_merging(tiny_gpt2):
    model = tiny_gpt2(n_layer=2, n_head=2, n_embd=8, n_positions=64)
    with pytest.raises(IndexError, match="2 blocks"):
        Freezer(model, FreezeSpec(blocks=[2]))
    with pytest.raises(IndexError, match="2 heads"):
        Freezer(model, FreezeSpec(heads=[(0, 2)]))
    with pytest.raises(ValueError):
        FreezeSpec(blocks=[-1])
    with pytest.raises(ValueError):
        FreezeSpec(block=[1])  # unknown field
    merged = FreezeSpec(blocks=[1], heads=[(0, 1)]).merged(
        FreezeSpec(blocks=[0, 1], heads=[(0, 0)])
    )
    assert merged == FreezeSpec(blocks=[0, 1], heads=[(0, 0), (0, 1)])
    assert FreezeSpec().is_empty()
