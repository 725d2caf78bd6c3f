"""Benchmark: one transition's CCI end to end (both models' forwards, scores, votes) at the paper's
scale: a GPT-2-small-shape pair (12 blocks, 12 heads, d_model 768, vocabulary 50,257; random,
the new model the old one perturbed), documents of ``--tokens`` tokens followed by 12 question and
answer tokens, three synthetic rationale spans of 7 % each.

Times :func:`rational_lamol.cci.identify_critical_components` as the pipeline calls it, block and
head level on the same examples, with ``--threads`` torch threads, and extrapolates the measured
seconds per example to a transition of ``--transition`` examples (the issue's reference: 200).
The forward's share is measured separately on the same examples (the lean ``attention_maps`` of
both models). Memory: one example's attention maps at 1,036 tokens are 0.6 GB per model, so the
batch is one example (``--batch``).

    python benchmarks/bench_cci_transition.py --threads 2          # minutes
    python benchmarks/bench_cci_transition.py --quick              # seconds

Writes ``benchmarks/results/cci_transition/cpu.json`` (``--out``: elsewhere).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from rational_lamol.adapters import adapter_for
from rational_lamol.cci import identify_critical_components, make_cci_batches

from common import (
    command_line,
    gpt2_pair,
    rationale_spans,
    result_path,
    speed_environment,
    write_result,
)

N_EXTRA = 12  # question, __ans__ and answer tokens after the document


def examples(n: int, tokens: int, vocab: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gt = rationale_spans(tokens, rng).tolist()
        out.append({"input_ids": rng.integers(0, vocab, tokens + N_EXTRA).tolist(),
                    "doc_mask": [True] * tokens + [False] * N_EXTRA,
                    "rationale_mask": gt + [False] * N_EXTRA})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds: 2 small blocks, short documents")
    parser.add_argument("--tokens", type=int, default=1024, help="document tokens per example")
    parser.add_argument("--examples", type=int, default=6, help="examples timed")
    parser.add_argument("--transition", type=int, default=200, help="examples of the extrapolated transition")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="recorded as is, e.g. what else was running")
    parser.add_argument("--out", type=Path, default=result_path("cci_transition", "cpu"))
    args = parser.parse_args(argv)
    shape = {"n_layer": 12, "n_head": 12, "n_embd": 768, "vocab": 50257}
    if args.quick:
        shape, args.tokens, args.examples = {"n_layer": 2, "n_head": 4, "n_embd": 64, "vocab": 500}, 64, 2
    torch.set_num_threads(args.threads)
    old, new = gpt2_pair(**shape, n_positions=args.tokens + N_EXTRA, seed=0)
    items = examples(args.examples, args.tokens, shape["vocab"], seed=0)
    started, load_start = time.perf_counter(), list(os.getloadavg())
    warm = next(make_cci_batches(items[:1]))
    for model in (old, new):  # first calls allocate: not timed
        adapter_for(model).attention_maps(warm["input_ids"], warm["attention_mask"])
    forward_s = 0.0
    for batch in make_cci_batches(items, batch_size=args.batch):
        t0 = time.perf_counter()
        for model in (old, new):
            adapter_for(model).attention_maps(batch["input_ids"], batch["attention_mask"])
        forward_s += time.perf_counter() - t0
    levels = {}
    for level in ("block", "head"):
        t0 = time.perf_counter()
        result = identify_critical_components(old, new, make_cci_batches(items, batch_size=args.batch), level=level)
        seconds = time.perf_counter() - t0
        per_example = seconds / args.examples
        levels[level] = {"seconds": round(seconds, 2), "s_per_example": round(per_example, 3),
                         "forward_share": round(forward_s / seconds, 3), "chosen": result.to_dict()["chosen"],
                         f"transition_of_{args.transition}_minutes": round(per_example * args.transition / 60, 1)}
        print(f"{level}: {per_example:.2f} s/example ({forward_s / seconds:.0%} forward) -> "
              f"{per_example * args.transition / 60:.1f} min for {args.transition} examples on "
              f"{args.threads} thread(s)", flush=True)
    result = {
        "benchmark": "one transition's CCI (identify_critical_components), GPT-2-small shape, timed and extrapolated",
        "command": command_line(),
        "note": args.note,
        "model": {**shape, "random_init": True},
        "doc_tokens": args.tokens,
        "examples_timed": args.examples,
        "batch": args.batch,
        "forward_s_per_example_both_models": round(forward_s / args.examples, 3),
        "levels": levels,
        "environment": speed_environment(load_start),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
