"""CCI (docs/algorithms.md §2): P_beta against numpy, IoU, a hand-computed 2-block 2-head toy, votes and
ties, skipped examples, and parity with the direct per-row loop (tests/oracles/cci_reference_loop.py)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rational_lamol import cci
from rational_lamol.adapters import adapter_for
from rational_lamol.cci import (
    block_scores,
    block_vote_shares,
    count_tied,
    head_scores,
    head_vote_shares,
    identify_critical_components,
    iou,
    make_cci_batches,
    percentile_binarize,
    percentile_threshold,
    vote_blocks,
    vote_heads,
)

from oracles import cci_reference_loop as ref

VOCAB = 64  # the tiny models' vocabulary (TINY_VOCAB in conftest.py)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def perturbed(model, scale=0.5, seed=1):
    new = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * p.std().clamp(min=1e-3))
    return new


# ---------------------------------------------------------------------------------------------
# P_beta and IoU
# ---------------------------------------------------------------------------------------------
def test_percentile_hand_cases():
    # n = 5, q = 0.8: virtual index 3.2 -> 0 + (1 - 0) * 0.2 = 0.2; only the 1 exceeds it.
    v = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])
    assert percentile_threshold(v, 20.0).item() == pytest.approx(0.2)
    assert percentile_binarize(v).tolist() == [False, False, False, False, True]
    # All equal: the percentile equals the value and nothing is strictly greater (empty mask).
    assert not percentile_binarize(torch.full((7,), 0.25)).any()
    # Ties at the top: n = 10, index 7.2 between two 0.5s -> 0.5; the 0.5s are not kept, only 0.9.
    v = torch.tensor([0.0] * 6 + [0.5, 0.5, 0.5, 0.9])
    assert percentile_binarize(v).tolist() == [False] * 9 + [True]
    # Causal row: zeros count as entries (D = 10, 3 visible keys): top-20% of all 10 entries.
    v = torch.tensor([0.2, 0.5, 0.3] + [0.0] * 7)
    assert percentile_binarize(v).tolist() == [False, True, True] + [False] * 7
    # ... restricted to the visible keys (valid): n = 3, index 1.6 -> 0.3 + 0.2 * 0.6 = 0.42.
    valid = torch.tensor([True] * 3 + [False] * 7)
    assert percentile_threshold(v, 20.0, valid).item() == pytest.approx(0.42)
    assert percentile_binarize(v, 20.0, valid).tolist() == [False, True] + [False] * 8


@pytest.mark.parametrize("kind", ["uniform", "ties", "zeros", "float64"])
@pytest.mark.parametrize("beta", [20.0, 0.0, 10.0, 37.5, 50.0, 100.0])
def test_percentile_matches_numpy(kind, beta):
    rng = np.random.default_rng(int(beta * 10) + len(kind))
    for D in [1, 2, 3, 5, 10, 17, 64]:
        if kind == "uniform":
            v = rng.random((8, D)).astype(np.float32)
        elif kind == "ties":
            v = rng.integers(0, 3, (8, D)).astype(np.float32) / 4
        elif kind == "zeros":
            v = np.where(rng.random((8, D)) < 0.7, 0.0, rng.random((8, D))).astype(np.float32)
        else:
            v = rng.random((8, D))
        expected = np.percentile(v, 100.0 - beta, axis=-1, keepdims=True)
        got = percentile_threshold(torch.from_numpy(v), beta)
        assert got.numpy().tolist() == expected.astype(v.dtype).tolist()
        mask = percentile_binarize(torch.from_numpy(v), beta).numpy()
        assert np.array_equal(mask, np.stack([row > np.percentile(row, 100.0 - beta) for row in v]))


def test_percentile_valid_matches_numpy_on_the_valid_entries():
    rng = np.random.default_rng(3)
    v = rng.random((40, 12)).astype(np.float32)
    valid = rng.random((40, 12)) < 0.5
    thr = percentile_threshold(torch.from_numpy(v), 20.0, torch.from_numpy(valid))
    mask = percentile_binarize(torch.from_numpy(v), 20.0, torch.from_numpy(valid))
    for i in range(40):
        if valid[i].any():
            assert thr[i, 0].item() == np.percentile(v[i][valid[i]], 80.0)
            assert np.array_equal(
                mask[i].numpy(), valid[i] & (v[i] > np.percentile(v[i][valid[i]], 80.0))
            )
        else:
            assert not mask[i].any()


def test_iou():
    a = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    b = torch.tensor([0, 1, 1, 0], dtype=torch.bool)
    assert iou(a, b).item() == pytest.approx(1 / 3)
    empty = torch.zeros(4, dtype=torch.bool)
    assert iou(empty, empty).item() == 1.0  # both empty: 1 by definition
    assert iou(empty, a).item() == 0.0
    assert iou(torch.stack([a, b, empty]), a).tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    # The fast count-based IoU used inside the scores agrees.
    rows = torch.stack([a, b, empty]).float()  # masks: rows > 0.5
    half = torch.full((3, 1), 0.5)
    assert cci._iou_masks(rows, half, a.float()).tolist() == iou(rows.bool(), a).tolist()
    assert cci._iou_masks(empty[None].float(), half[:1], empty.float()).tolist() == [1.0]


# ---------------------------------------------------------------------------------------------
# The hand-computed toy: L = 2 blocks, H = 2 heads, S = 2 query rows, D = 10 keys, beta = 20.
# Each row is 0.05 everywhere with 0.3 and 0.25 at two keys: its 80th percentile is
# 0.05 + 0.2 * (0.25 - 0.05) = 0.09 (virtual index 7.2), so P_beta keeps exactly those two keys.
# ---------------------------------------------------------------------------------------------
def row(i, j, D=10):
    r = torch.full((D,), 0.05)
    r[i], r[j] = 0.3, 0.25
    return r


def toy():
    gt = torch.zeros(10, dtype=torch.bool)
    gt[[2, 3]] = True  # GT = {2, 3}
    old = torch.stack(
        [
            torch.stack(
                [
                    torch.stack([row(2, 3), row(0, 1)]),  # b0 h0: IoU with GT 1,   0
                    torch.stack([row(3, 4), row(5, 6)]),
                ]
            ),  # b0 h1:             1/3, 0
            torch.stack(
                [
                    torch.stack([row(7, 8), row(2, 9)]),  # b1 h0:             0,   1/3
                    torch.stack([row(3, 9), row(0, 1)]),
                ]
            ),  # b1 h1:             1/3, 0
        ]
    )  # (L, H, S, D)
    new = torch.stack(
        [
            torch.stack([torch.stack([row(2, 4), row(0, 1)]), torch.stack([row(5, 6), row(3, 7)])]),
            torch.stack([torch.stack([row(2, 9), row(0, 1)]), torch.stack([row(3, 4), row(8, 9)])]),
        ]
    )
    return old, new, gt


def test_block_scores_hand_computed():
    old, new, gt = toy()
    # Block 0: best old row (h0, s0) = {2,3} (IoU 1).  New rows vs {2,3}: {2,4} 1/3, {0,1} 0,
    #          {5,6} 0, {3,7} 1/3  -> score_0 = 1/3.
    # Block 1: old IoUs 0, 1/3 (h0 s1 = {2,9}), 1/3 (h1 s0), 0: the first maximum, (h0, s1) = {2,9},
    #          wins.  New rows vs {2,9}: {2,9} 1 -> score_1 = 1.
    scores = block_scores(old, new, gt)
    assert scores.tolist() == pytest.approx([1 / 3, 1.0])
    assert vote_blocks([scores]) == (0, [1, 0])
    # Block b is compared with the SAME block b of the old model: changing old block 1 leaves
    # score_0 alone (the reference compared every block with the last block's map).
    old2 = old.clone()
    old2[1] = torch.stack(
        [torch.stack([row(0, 1), row(0, 1)]), torch.stack([row(0, 1), row(0, 1)])]
    )
    assert block_scores(old2, new, gt)[0].item() == pytest.approx(1 / 3)


def test_head_scores_hand_computed():
    old, new, gt = toy()
    # Each head picks its own best old row against GT:
    #   (0,0): s0 {2,3}; new rows {2,4} 1/3, {0,1} 0         -> 1/3
    #   (0,1): s0 {3,4}; new rows {5,6} 0,   {3,7} 1/3       -> 1/3
    #   (1,0): s1 {2,9}; new rows {2,9} 1,   {0,1} 0         -> 1
    #   (1,1): s0 {3,9}; new rows {3,4} 1/3, {8,9} 1/3       -> 1/3
    scores = head_scores(old, new, gt)
    assert scores.flatten().tolist() == pytest.approx([1 / 3, 1 / 3, 1.0, 1 / 3])
    # K = 2: three pairs tie at 1/3 for the two votes, so each gets 2/3; votes and means tie too,
    # so the seeded draw picks two of the three.
    chosen, hist = vote_heads([scores], k=2)
    assert np.allclose(hist, [[2 / 3, 2 / 3], [0, 2 / 3]])
    assert len(chosen) == 2 and set(chosen) <= {(0, 0), (0, 1), (1, 1)}
    # Each head uses its own GT comparison: head (1,1)'s RM is its own row {3,9}, not head 0's s*.
    assert head_scores(old, new, gt, row_filter="all")[1, 1].item() == pytest.approx(1 / 3)


def test_row_filter_after_last_rationale():
    D = 6
    torch.manual_seed(0)
    old = torch.softmax(torch.randn(2, 2, D, D), -1)
    new = torch.softmax(torch.randn(2, 2, D, D), -1)
    gt = torch.tensor([0, 0, 1, 0, 1, 0], dtype=torch.bool)  # last rationale position 4
    got = block_scores(old, new, gt, row_filter="after_last_rationale")
    expected = block_scores(old[:, :, 4:], new[:, :, 4:], gt)  # rows 4 and 5 only
    assert got.tolist() == expected.tolist()
    with pytest.raises(ValueError, match="row_filter"):
        block_scores(old, new, gt, row_filter="some")


def test_votes_and_ties():
    # Example 1 ties blocks 1 and 2 -> half a vote each; example 2 votes 2 -> block 2 (1.5 votes).
    chosen, hist = vote_blocks(torch.tensor([[0.9, 0.1, 0.1], [0.9, 0.5, 0.2]]))
    assert (chosen, hist) == (2, [0.0, 0.5, 1.5])
    assert vote_blocks([]) == (None, [])
    # Equal votes: the lower mean score (the more plastic block) wins, whatever its index.
    assert vote_blocks(torch.tensor([[0.1, 0.2, 0.9], [0.5, 0.0, 0.9]]))[0] == 1
    s = torch.tensor([[[0.5, 0.1], [0.1, 0.9]], [[0.2, 0.9], [0.1, 0.3]]])  # (N=2, L=2, H=2)
    chosen, hist = vote_heads(s, k=2)
    # ex 1: (0,1) and (1,0) tie at its 2nd lowest score and share its 2 votes; ex 2 votes (1,0),
    # (0,0). (1,0) has 2 votes; (0,0) and (0,1) one each: (0,0) has the lower mean (0.35 < 0.5).
    assert hist == [[1, 1], [2, 0]]
    assert chosen == [(1, 0), (0, 0)]
    # k capped at L*H: every pair gets 2 votes, ranked by mean score.
    assert vote_heads(s, k=100) == ([(1, 0), (0, 0), (0, 1), (1, 1)], [[2, 2], [2, 2]])


def test_full_ties_have_no_index_bias():
    """Scores tied everywhere (votes and means): the seeded draw picks every block sometimes."""
    flat = torch.full((5, 4), 0.5)
    picks = {vote_blocks(flat, tie_seed=seed)[0] for seed in range(40)}
    assert picks == {0, 1, 2, 3}
    assert vote_blocks(flat, tie_seed=3) == vote_blocks(flat, tie_seed=3)  # seeded: repeatable
    heads = {tuple(vote_heads(flat.reshape(5, 2, 2), k=1, tie_seed=seed)[0]) for seed in range(40)}
    assert len(heads) == 4


def test_tied_examples_are_counted():
    scores = torch.tensor([[0.1, 0.1, 0.3], [0.1, 0.2, 0.3], [0.4, 0.4, 0.4]])
    assert count_tied(block_vote_shares(scores)) == 2
    heads = scores.reshape(3, 1, 3)
    assert count_tied(head_vote_shares(heads, 1)) == 2  # rows 1 and 3 tie at their lowest
    assert count_tied(head_vote_shares(heads, 2)) == 1  # row 1's two lowest are 0.1, 0.1: no split
    shares = head_vote_shares(heads, 2)
    assert shares.sum(dim=-1).tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("level", ["block", "head"])
@pytest.mark.parametrize("row_filter", ["all", "after_last_rationale"])
def test_vectorized_matches_the_per_row_loop(level, row_filter, monkeypatch):
    rng = np.random.default_rng(7)
    torch.manual_seed(7)
    examples = []
    for n in range(10):
        D = int(rng.integers(6, 18))
        mask = torch.ones(D, D).tril().bool()  # causal, like real attention
        old = torch.softmax(torch.randn(3, 4, D, D) * 2, -1).masked_fill(~mask, 0)
        new = torch.softmax(torch.randn(3, 4, D, D) * 2, -1).masked_fill(~mask, 0)
        gt = torch.from_numpy(rng.random(D) < 0.3)
        if n == 5:
            gt[:] = False  # skipped
        examples.append((old, new, gt))
    fn = block_scores if level == "block" else head_scores
    loop_fn = ref.block_scores_loop if level == "block" else ref.head_scores_loop
    used = [(o, n, g) for o, n, g in examples if g.any()]
    vec = [fn(o, n, g, 20.0, row_filter) for o, n, g in used]
    loop = [loop_fn(o.numpy(), n.numpy(), g.numpy(), 20.0, row_filter) for o, n, g in used]
    for v, lp in zip(vec, loop, strict=True):
        assert np.array_equal(v.numpy(), lp)
    chosen, hist, n_used, skipped = ref.identify_loop(
        [(o.numpy(), n.numpy(), g.numpy()) for o, n, g in examples],
        level=level,
        top_k=5,
        row_filter=row_filter,
    )
    if level == "block":
        assert ([vote_blocks(vec)[0]], vote_blocks(vec)[1]) == (chosen, hist)
    else:
        assert vote_heads(vec, 5) == (chosen, hist)
    assert (n_used, skipped) == (9, 1)
    # Chunking over blocks (memory bound) changes nothing.
    monkeypatch.setattr(cci, "MAX_CHUNK_ELEMENTS", 1)
    for (o, n, g), v in zip(used, vec, strict=True):
        assert torch.equal(fn(o, n, g, 20.0, row_filter), v)


# ---------------------------------------------------------------------------------------------
# The whole step on tiny models
# ---------------------------------------------------------------------------------------------
def cci_examples(n=6, doc_len=(6, 14), seed=0):
    """c q __ans__ a-like sequences: a document first, then 4 tokens of question/answer."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        D = int(rng.integers(*doc_len))
        T = D + 4
        ids = rng.integers(1, VOCAB, T).tolist()
        doc = [True] * D + [False] * 4
        rat = [False] * T
        for j in rng.choice(D, size=2, replace=False):
            rat[int(j)] = True
        if i == 2:  # the rationale lies outside the kept document: must be skipped
            rat = [False] * D + [True, False, False, False]
        out.append({"input_ids": ids, "doc_mask": doc, "rationale_mask": rat})
    return out


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("level", ["block", "head"])
def test_identify_on_tiny_models_matches_the_loop(family, level, tiny_gpt2, tiny_llama):
    old = (
        tiny_gpt2(n_layer=2, n_head=2, n_embd=16)
        if family == "gpt2"
        else tiny_llama(n_layer=2, n_head=6, n_kv=2)
    )
    new = perturbed(old)
    old.train()
    new.eval()
    examples = cci_examples()
    result = identify_critical_components(
        old, new, make_cci_batches(examples, batch_size=4), level=level, top_k=3
    )
    assert old.training and not new.training  # modes restored
    assert (result.n_used, result.n_skipped) == (5, 1)
    ad = adapter_for(old)
    L, H = ad.n_blocks, ad.n_heads
    assert np.array(result.scores_mean).shape == ((L,) if level == "block" else (L, H))
    # The same numbers from per-example attention (batch of 1, no padding) and the numpy loop.
    loop_examples = []
    for ex in examples:
        ids = torch.tensor([ex["input_ids"]])
        idx = torch.tensor(ex["doc_mask"]).nonzero().squeeze(-1)
        a_old = ad.attention_maps(ids)[0][:, :, idx][:, :, :, idx]
        a_new = adapter_for(new).attention_maps(ids)[0][:, :, idx][:, :, :, idx]
        gt = torch.tensor(ex["rationale_mask"])[idx]
        loop_examples.append((a_old.numpy(), a_new.numpy(), gt.numpy()))
    chosen, hist, n_used, skipped = ref.identify_loop(loop_examples, level=level, top_k=3)
    assert (n_used, skipped) == (5, 1)
    assert result.votes == hist
    assert [tuple(c) if isinstance(c, list) else c for c in result.chosen] == chosen
    d = result.to_dict()
    assert d["row_filter"] == "all" and d["level"] == level


def test_identical_models_score_one_everywhere(tiny_gpt2):
    # score_b >= IoU(P(A_new[b,h*,s*]), P(RM_b)) = 1 when new == old.
    model = tiny_gpt2(n_layer=2, n_head=2, n_embd=16)
    result = identify_critical_components(
        model, model, make_cci_batches(cci_examples(), batch_size=3), level="head"
    )
    assert np.allclose(result.scores_mean, 1.0)


def test_padding_does_not_change_the_result(tiny_gpt2):
    old = tiny_gpt2(n_layer=3, n_head=2, n_embd=16)
    new = perturbed(old)
    examples = cci_examples(n=5, doc_len=(5, 20))
    one = identify_critical_components(
        old, new, make_cci_batches(examples, batch_size=1), level="head", top_k=2
    )
    many = identify_critical_components(
        old, new, make_cci_batches(examples, batch_size=5), level="head", top_k=2
    )
    assert one.votes == many.votes and one.chosen == many.chosen
    np.testing.assert_allclose(one.scores_mean, many.scores_mean)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_the_document_alone_gives_the_result_of_the_whole_sequence(family, tiny_gpt2, tiny_llama):
    """CCI items stop at the document's end (``cci_inputs.cci_item``): under causal attention the
    question and answer after it change none of the document's rows and columns, so scores, votes
    and choices are those of the whole ``c q __ans__ a``."""
    old = tiny_gpt2(n_layer=3, n_head=2, n_embd=16) if family == "gpt2" else tiny_llama(n_layer=2, n_head=6, n_kv=2)
    new = perturbed(old)
    whole = cci_examples(n=7, doc_len=(5, 20), seed=4)
    documents = [{k: v[: sum(ex["doc_mask"])] for k, v in ex.items()} for ex in whole]
    assert all(len(d["input_ids"]) < len(w["input_ids"]) for d, w in zip(documents, whole, strict=True))
    for level in ("block", "head"):
        a = identify_critical_components(old, new, make_cci_batches(whole, batch_size=3), level=level, top_k=2)
        b = identify_critical_components(old, new, make_cci_batches(documents, batch_size=3), level=level, top_k=2)
        assert (a.votes, a.chosen, a.n_used, a.n_skipped) == (b.votes, b.chosen, b.n_used, b.n_skipped)
        np.testing.assert_allclose(a.scores_mean, b.scores_mean, rtol=0, atol=1e-6)


def test_batches_of_similar_length_give_the_same_result(tiny_gpt2):
    """``make_cci_batches`` groups examples by length (less padding in the forward); the scores
    are put back in the examples' order, so votes, choices and mean scores are those of batches
    formed in order."""
    old = tiny_gpt2(n_layer=3, n_head=2, n_embd=16)
    new = perturbed(old)
    examples = cci_examples(n=9, doc_len=(5, 30), seed=3)
    batches = list(make_cci_batches(examples, batch_size=3))
    lengths = [len(ex["input_ids"]) for ex in examples]
    assert sorted(int(i) for b in batches for i in b["index"]) == list(range(9))
    widths = [b["input_ids"].shape[1] for b in batches]
    assert widths == sorted(widths) and sum(widths) < 3 * sum(max(lengths[k:k + 3]) for k in range(0, 9, 3))
    for level in ("block", "head"):
        by_length = identify_critical_components(old, new, make_cci_batches(examples, batch_size=3),
                                                 level=level, top_k=2)
        in_order = identify_critical_components(
            old, new, make_cci_batches(examples, batch_size=3, by_length=False), level=level, top_k=2)
        assert by_length.to_dict() == in_order.to_dict()


def test_all_skipped_and_bad_arguments(tiny_gpt2):
    model = tiny_gpt2(n_layer=2, n_head=2, n_embd=16)
    examples = [dict(ex, rationale_mask=[False] * len(ex["input_ids"])) for ex in cci_examples(n=3)]
    result = identify_critical_components(model, model, make_cci_batches(examples))
    assert (result.chosen, result.n_used, result.n_skipped) == ([], 0, 3)
    with pytest.raises(ValueError, match="level"):
        identify_critical_components(model, model, [], level="layer")
    with pytest.raises(ValueError, match="row_filter"):
        identify_critical_components(model, model, [], row_filter="late")


# ---------------------------------------------------------------------------------------------
# Fast paths: equal to the plain computation bit for bit
# ---------------------------------------------------------------------------------------------
def causal_rows(L, H, S, D, first=0, seed=0, ties=False):
    """Softmax rows where row i sees keys <= first + i; ``ties``: values from a few levels
    (many equal entries), with exact zeros inside the causal prefix too."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(L, H, S, D, generator=g) * 2.0
    if ties:
        logits = (logits * 1.5).round()
        logits[logits < -1] = -torch.inf  # zeros inside the prefix
    keys = torch.arange(D)
    rows = first + torch.arange(S)
    att = torch.softmax(logits.masked_fill(keys[None, :] > rows[:, None], -torch.inf), dim=-1)
    return att.nan_to_num(0.0)  # a row of -inf only: all zeros


@pytest.mark.parametrize("beta", [0.0, 5.0, 20.0, 37.5, 50.0, 60.0, 100.0])
@pytest.mark.parametrize("D", [1, 2, 3, 7, 40, 129])
@pytest.mark.parametrize("ties", [False, True])
def test_causal_threshold_equals_the_full_row_threshold(beta, D, ties):
    for first in (0, D // 3, D - 1):
        att = causal_rows(2, 3, D - first, D, first, seed=D, ties=ties)
        expected = percentile_threshold(att, beta)
        got = cci.causal_threshold(att, beta, first)
        assert torch.equal(got, expected), (beta, D, first)


def test_causal_threshold_zero_rows_need_no_selection(monkeypatch):
    """Early causal rows (fewer non-zero entries than the top beta %) get a threshold of exactly 0
    without a selection; the rest come from a prefix of the row."""
    D = 50
    att = causal_rows(1, 2, D, D)
    expected = percentile_threshold(att, 20.0)
    calls = []
    order_pair = cci._order_pair
    monkeypatch.setattr(cci, "_order_pair", lambda v, j: calls.append(v.shape) or order_pair(v, j))
    got = cci.causal_threshold(att, 20.0)
    lo = int(0.8 * (D - 1))  # 39: rows 0..D-lo-3 = 0..8 hold >= lo + 2 zeros
    assert torch.equal(got, expected)
    assert (got[..., : D - lo - 2, :] == 0).all() and (got[..., D - lo - 2 :, :] > 0).all()
    assert all(shape[-2] * 8 <= D for shape in calls)  # bands, never every row at once
    assert any(shape[-1] < D for shape in calls)  # prefixes shorter than the row


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sort_max_entries", [0, 512], ids=["partition", "sort"])
def test_the_cpu_selection_equals_the_topk_selection(ties, dtype, sort_max_entries, monkeypatch):
    """numpy's sort or partition (CPU) and topk (GPU) find the same order statistics, duplicates
    counted."""
    monkeypatch.setattr(cci, "SORT_MAX_ENTRIES", sort_max_entries)
    att = causal_rows(2, 3, 41, 41, seed=3, ties=ties).to(dtype)
    for j in (0, 1, 7, 20, 32, 39):
        cpu, gpu = cci._order_pair_numpy(att, j), cci._order_pair_topk(att, j)
        assert all(torch.equal(c, g) for c, g in zip(cpu, gpu, strict=True)), j
        ordered = att.sort(dim=-1).values
        assert torch.equal(cpu[0], ordered[..., j : j + 1]) and torch.equal(cpu[1], ordered[..., j + 1 : j + 2])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_causal_threshold_reads_half_precision_maps(dtype):
    """numpy has no bfloat16: half-precision maps take torch's path for every check and selection."""
    att = causal_rows(2, 3, 40, 40, seed=5).to(dtype)
    assert torch.equal(cci.causal_threshold(att, 20.0), percentile_threshold(att, 20.0))


@pytest.mark.parametrize(
    "spoil",
    ["negative", "negative_below_the_top", "mostly_negative", "nonzero_after", "not_causal"],
)
def test_causal_threshold_falls_back_on_non_causal_rows(spoil):
    """Negative entries: in a row of few keys (its threshold stays 0), in a selection row below its
    k largest (the prefix still decides) or among them (the full row decides)."""
    att = causal_rows(2, 2, 30, 30)
    if spoil == "negative":
        att[0, 1, 2, 0] = -1e-3
    elif spoil == "negative_below_the_top":
        att[0, 1, 20, :3] = -1e-3
    elif spoil == "mostly_negative":
        att[1, 0, 25, :24] = -1e-3  # 2 positive keys and the zeros after
    elif spoil == "nonzero_after":
        att[1, 0, 3, 29] = 1e-6
    else:
        att = torch.rand(2, 2, 30, 30)
    assert torch.equal(cci.causal_threshold(att, 20.0), percentile_threshold(att, 20.0))


@pytest.mark.parametrize("tile", [1, 7, 2**20])
def test_iou_masks_equal_the_boolean_iou(tile, monkeypatch):
    """Tiled float masks (any tile size) give the IoU of the boolean masks, bit for bit, including
    empty masks (1.0) and a reference per leading index."""
    monkeypatch.setattr(cci, "TILE_ELEMENTS", tile)
    att = causal_rows(2, 3, 33, 33, ties=True)
    att[0, 0, 5] = 0.0  # an empty mask
    thr = percentile_threshold(att, 20.0)
    mask = att > thr
    g = torch.Generator().manual_seed(0)
    for gt_mask in (torch.rand(33, generator=g) < 0.3, torch.rand(2, 1, 33, generator=g) < 0.3,
                torch.rand(2, 3, 33, generator=g) < 0.3, torch.zeros(33, dtype=torch.bool)):
        got = cci._iou_masks(att, thr, gt_mask.float())
        assert torch.equal(got, iou(mask, gt_mask.unsqueeze(-2)))


def test_crop_slices_a_contiguous_span_and_gathers_anything_else():
    att = torch.rand(2, 3, 12, 12)
    for positions in ([3, 4, 5, 6], [0], list(range(12)), [2, 3, 5, 6], [1, 7]):
        idx = torch.tensor(positions)
        expected = att.index_select(2, idx).index_select(3, idx)
        assert torch.equal(cci._crop(att, idx), expected)
    assert cci._crop(att, torch.tensor([3, 4, 5]))._base is att  # a view, no copy


def test_scores_of_per_block_views_equal_those_of_the_stacked_maps():
    """CCI scores each block's cropped view of the model's per-block maps, never stacking them."""
    g = torch.Generator().manual_seed(0)
    blocks_old, blocks_new = ([torch.rand(2, 3, 20, 20, generator=g).tril().softmax(-1) for _ in range(4)]
                              for _ in range(2))
    idx, gt = torch.arange(2, 18), torch.rand(16, generator=g) < 0.3
    views_old, views_new = cci._crop_blocks(blocks_old, 1, idx), cci._crop_blocks(blocks_new, 1, idx)
    assert all(v._base is b for v, b in zip(views_old, blocks_old, strict=True))
    stacked_old = cci._crop(torch.stack(blocks_old, dim=1)[1], idx)
    stacked_new = cci._crop(torch.stack(blocks_new, dim=1)[1], idx)
    for fn in (block_scores, head_scores):
        assert torch.equal(fn(views_old, views_new, gt), fn(stacked_old, stacked_new, gt))
    with pytest.raises(ValueError, match="same shape"):
        block_scores(views_old, views_new[:3], gt)


@pytest.mark.parametrize("level", ["block", "head"])
def test_identify_with_the_document_after_a_prefix_or_with_a_hole(level, tiny_gpt2):
    """A document that does not start the sequence (sliced) and one with a hole (gathered)
    score as the loop scores the same crops."""
    old = tiny_gpt2(n_layer=2, n_head=2, n_embd=16)
    new = perturbed(old)
    examples = cci_examples()
    for k, ex in enumerate(examples):  # 2 leading non-document tokens; every other one: a hole
        ex["input_ids"] = [5, 6] + ex["input_ids"]
        ex["doc_mask"] = [False, False] + ex["doc_mask"]
        ex["rationale_mask"] = [False, False] + ex["rationale_mask"]
        if k % 2:
            ex["doc_mask"][4] = ex["rationale_mask"][4] = False
    result = identify_critical_components(old, new, make_cci_batches(examples, batch_size=4), level=level, top_k=3)
    loop_examples = []
    for ex in examples:
        ids = torch.tensor([ex["input_ids"]])
        idx = torch.tensor(ex["doc_mask"]).nonzero().squeeze(-1)
        crop = [adapter_for(m).attention_maps(ids)[0][:, :, idx][:, :, :, idx].numpy() for m in (old, new)]
        loop_examples.append((*crop, torch.tensor(ex["rationale_mask"])[idx].numpy()))
    chosen, hist, n_used, skipped = ref.identify_loop(loop_examples, level=level, top_k=3)
    assert (result.n_used, result.n_skipped) == (n_used, skipped)
    assert result.votes == hist
    assert [tuple(c) if isinstance(c, list) else c for c in result.chosen] == chosen


def test_scores_match_the_official_transcription():
    """tests/oracles/cci_official.py (the official per-row numpy arithmetic, the two documented
    fixes applied): the same scores up to the rounding of ``1 - jaccard distance``, and the same
    per-example choices where the example has no tie."""
    pytest.importorskip("scipy")
    from oracles import cci_official as official

    for seed in range(3):
        old = causal_rows(2, 3, 24, 24, seed=seed)
        new = causal_rows(2, 3, 24, 24, seed=seed + 10)
        gt = torch.zeros(24, dtype=torch.bool)
        gt[5 + seed : 11 + seed] = True
        ours_b = block_scores(old, new, gt).numpy()
        ours_h = head_scores(old, new, gt).numpy()
        args = (old.numpy(), new.numpy(), gt.numpy())
        np.testing.assert_allclose(official.block_scores(*args), ours_b, rtol=0, atol=1e-12)
        np.testing.assert_allclose(official.head_scores(*args), ours_h, rtol=0, atol=1e-12)
        if (ours_b == ours_b.min()).sum() == 1:
            assert official.block_choice(official.block_scores(*args)) == int(ours_b.argmin())
        flat = np.sort(ours_h, axis=None)
        if flat[2] != flat[3]:  # no tie across the 3rd place
            assert official.head_choice(official.head_scores(*args), 3) == official.head_choice(ours_h, 3)
