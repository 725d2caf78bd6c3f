"""Architecture adapters: sizes from the config, exact block parameters, exact head slices,
the GQA rule and attention capture, on tiny GPT-2 and Llama models built from configs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rational_lamol.adapters import GPT2Adapter, LlamaAdapter, adapter_for, kv_heads_to_freeze

VOCAB = 64  # the tiny models' vocabulary (TINY_VOCAB in conftest.py)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def test_sizes_come_from_the_config(tiny_gpt2, tiny_llama):
    ad = adapter_for(tiny_gpt2(n_layer=3, n_head=4, n_embd=32))
    assert isinstance(ad, GPT2Adapter)
    assert (ad.n_blocks, ad.n_heads, ad.n_kv_heads, ad.head_dim) == (3, 4, 4, 8)
    # SmolLM2-like: 9 query heads sharing 3 KV heads.
    ad = adapter_for(tiny_llama(n_layer=2, n_head=9, n_kv=3, hidden=36))
    assert isinstance(ad, LlamaAdapter)
    assert (ad.n_blocks, ad.n_heads, ad.n_kv_heads, ad.head_dim) == (2, 9, 3, 4)
    assert len(ad.blocks()) == 2


def test_unsupported_architecture_names_the_supported_ones():
    with pytest.raises(ValueError, match="supported model types: gpt2.*llama"):
        adapter_for(nn.Linear(2, 2))


def test_block_parameters_are_exact_no_substring_matching(tiny_gpt2):
    model = tiny_gpt2(n_layer=12, n_head=2, n_embd=8)
    ad = adapter_for(model)
    named = dict(model.named_parameters())
    params = ad.block_parameters(1)
    names = [n for n, _ in params]
    assert names and all(n.startswith("transformer.h.1.") for n in names)
    assert all(named[n] is p for n, p in params)
    expected = [n for n in named if n.split(".")[:3] == ["transformer", "h", "1"]]
    assert sorted(names) == sorted(expected)
    assert not any(n.startswith(("transformer.h.10.", "transformer.h.11.")) for n in names)
    with pytest.raises(IndexError, match="12 blocks"):
        ad.block_parameters(12)


def _coverage(slices, shape_of):
    masks = {}
    for name, param, index in slices:
        m = masks.setdefault(name, torch.zeros(param.shape, dtype=torch.int32))
        m[index] += 1
    return masks


def test_gpt2_head_slices_partition_the_attention_weights(tiny_gpt2):
    model = tiny_gpt2(n_layer=2, n_head=4, n_embd=32)
    ad = adapter_for(model)
    slices = [s for h in range(4) for s in ad.head_slices(1, h)]
    cov = _coverage(slices, None)
    assert set(cov) == {
        f"transformer.h.1.attn.{n}" for n in ("c_attn.weight", "c_attn.bias", "c_proj.weight")
    }
    for m in cov.values():  # every element owned by exactly one head
        assert bool((m == 1).all())
    # head 2 owns columns [k*E + 16, k*E + 24) of c_attn.weight, k = 0, 1, 2 (E = 32, d = 8).
    cols = torch.zeros(96, dtype=torch.bool)
    for _, _, index in [s for s in ad.head_slices(1, 2) if s[0].endswith("c_attn.weight")]:
        cols[index[1]] = True
    assert cols.nonzero().squeeze(-1).tolist() == [*range(16, 24), *range(48, 56), *range(80, 88)]


def test_llama_head_slices_and_kv_slices_partition_the_attention_weights(tiny_llama):
    model = tiny_llama(n_head=6, n_kv=2, hidden=48, attention_bias=True)
    ad = adapter_for(model)
    slices = [s for h in range(6) for s in ad.head_slices(0, h)]
    slices += [s for g in range(2) for s in ad.kv_head_slices(0, g)]
    cov = _coverage(slices, None)
    names = {
        f"model.layers.0.self_attn.{p}.{k}"
        for p in ("q_proj", "k_proj", "v_proj")
        for k in ("weight", "bias")
    }
    assert set(cov) == names | {"model.layers.0.self_attn.o_proj.weight"}  # o_proj.bias is shared
    for m in cov.values():
        assert bool((m == 1).all())


def test_gqa_rule(tiny_llama):
    assert kv_heads_to_freeze({(0, 0), (0, 1), (0, 2)}, 9, 3) == {(0, 0)}
    assert kv_heads_to_freeze({(0, 0), (0, 1)}, 9, 3) == set()
    assert kv_heads_to_freeze({(1, 3), (1, 4), (1, 5), (0, 5)}, 6, 2) == {(1, 1)}
    assert kv_heads_to_freeze({(2, 1)}, 4, 4) == {(2, 1)}  # plain MHA: K/V go with Q
    with pytest.raises(ValueError):
        kv_heads_to_freeze(set(), 6, 4)
    ad = adapter_for(tiny_llama(n_head=6, n_kv=2))
    partial = {n for n, _, _ in ad.frozen_head_slices([(0, 0), (0, 1)])}
    assert not any("k_proj" in n or "v_proj" in n for n in partial)
    full = ad.frozen_head_slices([(0, 0), (0, 1), (0, 2)])
    kv = [(n, i) for n, _, i in full if "k_proj" in n or "v_proj" in n]
    assert kv == [
        ("model.layers.0.self_attn.k_proj.weight", (slice(0, 8), slice(None))),
        ("model.layers.0.self_attn.v_proj.weight", (slice(0, 8), slice(None))),
    ]


def _merged_heads(model, proj_module, x):
    """The input of the output projection (B, T, H*d): the heads' outputs side by side."""
    seen = {}
    handle = proj_module.register_forward_pre_hook(
        lambda m, args: seen.__setitem__("x", args[0].detach().clone())
    )
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen["x"]


def _perturb(slices):
    with torch.no_grad():
        for _, p, index in slices:
            p[index] += torch.randn_like(p[index])


@pytest.mark.parametrize("family", ["gpt2", "llama_mha", "llama_gqa"])
def test_perturbing_a_heads_slices_changes_only_that_heads_output(family, tiny_gpt2, tiny_llama):
    if family == "gpt2":
        model = tiny_gpt2(n_layer=2, n_head=4, n_embd=32)
    else:
        model = tiny_llama(
            n_head=4, n_kv=4 if family == "llama_mha" else 2, hidden=32, attention_bias=True
        )
    model.eval()
    ad = adapter_for(model)
    proj = ad.blocks()[1].attn.c_proj if family == "gpt2" else ad.blocks()[1].self_attn.o_proj
    x = torch.randint(0, VOCAB, (2, 9))
    d, H = ad.head_dim, ad.n_heads
    before = _merged_heads(model, proj, x)
    # Query head 2 alone (plus its K/V when it owns them): only head 2's chunk moves.
    _perturb(
        [
            s
            for s in ad.frozen_head_slices([(1, 2)])
            if "c_proj" not in s[0] and "o_proj" not in s[0]
        ]
    )
    after = _merged_heads(model, proj, x)
    changed = [
        not torch.allclose(before[..., h * d : (h + 1) * d], after[..., h * d : (h + 1) * d])
        for h in range(H)
    ]
    assert changed == [h == 2 for h in range(H)]
    if family == "llama_gqa":  # KV head 0 serves query heads 0 and 1
        before = after
        _perturb(ad.kv_head_slices(1, 0))
        after = _merged_heads(model, proj, x)
        changed = [
            not torch.allclose(before[..., h * d : (h + 1) * d], after[..., h * d : (h + 1) * d])
            for h in range(H)
        ]
        assert changed == [True, True, False, False]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_output_projection_slice_reads_exactly_that_head(family, tiny_gpt2, tiny_llama):
    model = tiny_gpt2(n_layer=2) if family == "gpt2" else tiny_llama(n_head=4, n_kv=2, hidden=32)
    model.eval()
    ad = adapter_for(model)
    proj = ad.blocks()[0].attn.c_proj if family == "gpt2" else ad.blocks()[0].self_attn.o_proj
    d = ad.head_dim
    x = torch.randint(0, VOCAB, (2, 7))
    # Zeroing head 1's inputs to the output projection ...
    handle = proj.register_forward_pre_hook(
        lambda m, args: (
            torch.cat(
                [
                    args[0][..., :d],
                    torch.zeros_like(args[0][..., d : 2 * d]),
                    args[0][..., 2 * d :],
                ],
                -1,
            ),
        )
    )
    with torch.no_grad():
        expected = model(x).logits
    handle.remove()
    # ... equals zeroing the output-projection slice head 1 owns.
    out_slices = [s for s in ad.head_slices(0, 1) if "c_proj" in s[0] or "o_proj" in s[0]]
    assert len(out_slices) == 1
    with torch.no_grad():
        for _, p, index in out_slices:
            p[index] = 0
        got = model(x).logits
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_attention_maps_shape_and_mode(family, tiny_gpt2, tiny_llama):
    model = (
        tiny_gpt2(n_layer=3, n_head=4)
        if family == "gpt2"
        else tiny_llama(n_layer=3, n_head=6, n_kv=2)
    )
    model.train()
    ad = adapter_for(model)
    ids = torch.randint(0, VOCAB, (2, 11))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    att = ad.attention_maps(ids, mask)
    assert att.shape == (2, 3, ad.n_heads, 11, 11)
    assert model.training  # mode restored
    torch.testing.assert_close(att[0].sum(-1), torch.ones(3, ad.n_heads, 11))
    assert float(att[0].triu(1).abs().max()) == 0.0  # causal
    # Eval mode: two calls agree (no dropout).
    torch.testing.assert_close(att, ad.attention_maps(ids, mask))


def test_attention_maps_require_eager(tiny_gpt2):
    model = tiny_gpt2(attn="sdpa")
    with pytest.raises(ValueError, match='attn_implementation="eager"'):
        adapter_for(model).attention_maps(torch.randint(0, VOCAB, (1, 5)))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_attention_maps_skip_the_lm_head_with_identical_maps(family, tiny_gpt2, tiny_llama):
    """The lean forward (base transformer, no logits) returns exactly the full forward's attention."""
    model = tiny_gpt2(n_layer=3, n_head=4) if family == "gpt2" else tiny_llama(n_layer=3, n_head=6, n_kv=2)
    model.eval()
    ids = torch.randint(0, VOCAB, (3, 13))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    calls = []
    head = model.get_output_embeddings()
    handle = head.register_forward_hook(lambda *args: calls.append(1))
    try:
        lean = adapter_for(model).attention_maps(ids, mask)
    finally:
        handle.remove()
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, output_attentions=True, use_cache=False)
    assert not calls  # the LM head never ran
    assert torch.equal(lean, torch.stack(full.attentions, dim=1))
