"""Benchmark: vectorized CCI (``rational_lamol.cci``) vs the direct per-row loop
(``tests/oracles/cci_reference_loop.py``, the reference code's structure with the corrected definitions).

Inputs are attention-like tensors of a GPT-2-small-like shape (12 blocks x 12 heads): causal
softmax rows over D document tokens, the "new" model a perturbation of the "old" one, and a
rationale of a few contiguous spans (~20 % of the document). For each document length D (128, 512,
1024) and each level (block, head) it reports examples/s of both implementations and checks that
they give the same scores, votes and chosen components on the same examples. Optionally
(``--models``) it also times the whole ``identify_critical_components`` step (forward passes
included) on a small randomly initialised GPT-2.

    python benchmarks/bench_cci.py            # ~3-5 minutes on 2 CPU cores
    python benchmarks/bench_cci.py --quick    # seconds: a smoke run

Writes ``benchmarks/results/cci/<device>.json`` (``--out``: elsewhere).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from rational_lamol.cci import (
    block_scores,
    head_scores,
    identify_critical_components,
    make_cci_batches,
    vote_blocks,
    vote_heads,
)

from common import command_line, load_oracle, rationale_spans, result_path, timed, write_result

loop = load_oracle("cci_reference_loop")


def attention_like(
    L: int, H: int, D: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """An old/new pair of causal attention tensors (L, H, D, D); new = old's logits + noise."""
    causal = torch.ones(D, D, dtype=torch.bool).tril()
    logits = torch.randn(L, H, D, D, generator=gen) * 2.0
    old = torch.softmax(logits.masked_fill(~causal, -torch.inf), dim=-1)
    logits += torch.randn(L, H, D, D, generator=gen) * 1.0
    new = torch.softmax(logits.masked_fill(~causal, -torch.inf), dim=-1)
    return old, new


def bench_size(
    D: int, n_vec: int, n_loop: int, loop_blocks: int | None, L: int, H: int, top_k: int, seed: int
) -> dict:
    """Time both implementations at one document length.

    ``loop_blocks`` (None = all): the loop scores only the first blocks and its time is scaled by
    ``L / loop_blocks`` (its cost is exactly linear in blocks; every block does the same work);
    scores are then compared on those blocks and the chosen components only when all were scored.
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(max(n_vec, n_loop)):
        old, new = attention_like(L, H, D, gen)
        examples.append((old, new, rationale_spans(D, rng)))
    k = L if loop_blocks is None else min(loop_blocks, L)
    row: dict = {"doc_tokens": D, "blocks": L, "heads": H, "loop_blocks_timed": k}
    for level, fn, loop_fn in (
        ("block", block_scores, loop.block_scores_loop),
        ("head", head_scores, loop.head_scores_loop),
    ):
        vec_scores, vec_s = timed(lambda fn=fn: [fn(o, n, g) for o, n, g in examples[:n_vec]])
        loop_scores, loop_s = timed(
            lambda loop_fn=loop_fn: [
                loop_fn(o.numpy(), n.numpy(), g.numpy(), n_blocks=k)
                for o, n, g in examples[:n_loop]
            ]
        )
        loop_s_full = loop_s * L / k
        same_scores = all(
            np.array_equal(v.numpy()[:k], lp[:k])
            for v, lp in zip(vec_scores, loop_scores, strict=False)
        )
        if k < L:
            same_choice = None  # not all blocks were scored by the loop
        elif level == "block":
            same_choice = vote_blocks(vec_scores[:n_loop]) == loop.vote_blocks_loop(loop_scores)
        else:
            same_choice = vote_heads(vec_scores[:n_loop], top_k) == loop.vote_heads_loop(
                loop_scores, top_k
            )
        vec_eps, loop_eps = n_vec / vec_s, n_loop / loop_s_full
        row[level] = {
            "vectorized": {
                "examples": n_vec,
                "seconds": round(vec_s, 3),
                "examples_per_s": round(vec_eps, 4),
            },
            "loop": {
                "examples": n_loop,
                "seconds_measured": round(loop_s, 3),
                "seconds_all_blocks": round(loop_s_full, 3),
                "extrapolated_from_blocks": None if k == L else k,
                "examples_per_s": round(loop_eps, 4),
            },
            "speedup": round(vec_eps / loop_eps, 2),
            "same_scores_on_common_examples": bool(same_scores),
            "same_votes_and_chosen": same_choice,
            "compared_examples": min(n_vec, n_loop),
        }
        print(
            f"D={D:5d} {level:5s}: vectorized {vec_eps:8.3f} ex/s ({n_vec} ex), "
            f"loop {loop_eps:8.3f} ex/s ({n_loop} ex, {k}/{L} blocks timed), "
            f"speedup {vec_eps / loop_eps:6.1f}x, same scores {same_scores}, same choice {same_choice}",
            flush=True,
        )
    return row


def bench_models(n_examples: int, doc_len: int, seed: int) -> dict:
    """The whole step (both forward passes with attention + scoring) on a small random GPT-2."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=6,
        n_head=8,
        n_embd=256,
        vocab_size=1000,
        n_positions=doc_len + 32,
        attn_implementation="eager",
    )
    old = GPT2LMHeadModel(config)
    new = GPT2LMHeadModel(config)
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(n_examples):
        D = int(rng.integers(doc_len // 2, doc_len + 1))
        T = D + 12
        rat = rationale_spans(D, rng).tolist() + [False] * 12
        examples.append(
            {
                "input_ids": rng.integers(0, 1000, T).tolist(),
                "doc_mask": [True] * D + [False] * 12,
                "rationale_mask": rat,
            }
        )
    out = {
        "model": "gpt2 6 blocks x 8 heads, d_model 256 (random init)",
        "examples": n_examples,
        "max_doc_tokens": doc_len,
    }
    for level in ("block", "head"):
        result, s = timed(
            lambda level=level: identify_critical_components(
                old, new, make_cci_batches(examples, batch_size=8), level=level, top_k=12
            )
        )
        out[level] = {
            "seconds": round(s, 3),
            "examples_per_s": round(n_examples / s, 3),
            "chosen": result.to_dict()["chosen"],
        }
        print(f"tiny GPT-2 end-to-end {level}: {n_examples / s:.2f} ex/s", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a seconds-long smoke run (small shapes)"
    )
    parser.add_argument(
        "--models",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the end-to-end step on a small GPT-2",
    )
    parser.add_argument("--out", type=Path, default=result_path("cci", "cpu"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice); 1 is much faster on a busy machine",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.quick:
        L = H = 4
        plan = [(64, 4, 2, None), (128, 2, 1, 2)]
    else:
        L = H = 12
        # (document tokens, vectorized examples, loop examples, loop blocks timed): the loop runs
        # every block (so the chosen components are compared at every size), on few examples.
        plan = [(128, 8, 2, None), (512, 3, 1, None), (1024, 2, 1, None)]
    results = {
        "benchmark": "CCI vectorized (rational_lamol.cci) vs per-row loop (tests/oracles/cci_reference_loop.py)",
        "command": command_line(),
        "definitions": "docs/algorithms.md §2; beta=20, row_filter='all', percentile over the full cropped row",
        "top_k": 12,
        "environment": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "device": "cpu",
        },
        "sizes": [],
    }
    start = time.perf_counter()
    for D, n_vec, n_loop, loop_blocks in plan:
        results["sizes"].append(bench_size(D, n_vec, n_loop, loop_blocks, L, H, 12, args.seed))
    if args.models:
        results["end_to_end"] = bench_models(
            8 if args.quick else 32, 64 if args.quick else 256, args.seed
        )
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    results["environment"]["load_average_at_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    checks = [row[level] for row in results["sizes"] for level in ("block", "head")]
    results["all_scores_identical"] = all(c["same_scores_on_common_examples"] for c in checks)
    results["all_compared_choices_identical"] = all(
        c["same_votes_and_chosen"] for c in checks if c["same_votes_and_chosen"] is not None
    )
    write_result(args.out, results)
    return results


if __name__ == "__main__":
    main()
