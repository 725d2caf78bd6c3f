"""Benchmark: our pseudo-sample sampler against the official LAMOL sampler, interleaved in one process.

The official side is ``tests/oracles/lamol_sampler_official.py`` (chho33/LAMOL's
``sample_sequence``: per-sample pasts stacked into a batch every step, a vocabulary-wide top-k
filter, ``softmax`` and ``multinomial``). Ours is :func:`rational_lamol.pseudo.sample_with_cache`
(one growing cache, rows leave it at EOS, top-k sampling over k values). Both sample the same
number of sequences from the same randomly initialised GPT-2 at one thread; a random model never
emits EOS early, so every sample runs to the window and both do the same number of forward steps
(``--eos-boost`` scales EOS's embedding row so that samples stop at varied lengths instead).
Each (size, length) runs ``--rounds`` times, alternating official and ours.

    python benchmarks/bench_generation.py             # demo, small and GPT-2-small shapes; minutes
    python benchmarks/bench_generation.py --quick     # seconds

Writes ``benchmarks/results/generation/cpu.json`` (``--out``: elsewhere) with tokens/s per side,
the ratio, the machine, the thread count and the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rational_lamol.pseudo import sample_with_cache

from common import command_line, load_oracle, result_path, speed_environment, write_result

official = load_oracle("lamol_sampler_official")

SIZES = {
    "demo (2L, d128, V 1k)": dict(n_layer=2, n_embd=128, vocab_size=1000),
    "small (4L, d256, V 50k)": dict(n_layer=4, n_embd=256, vocab_size=50257),
    "GPT-2 small (12L, d768, V 50k)": dict(n_layer=12, n_embd=768, vocab_size=50257),
}
START, EOS, TOP_K = 2, 1, 20


def build(size: dict, window: int, eos_boost: float):
    torch.manual_seed(0)
    config = GPT2Config(n_head=size["n_embd"] // 64, n_positions=window, bos_token_id=EOS, eos_token_id=EOS,
                        pad_token_id=0, attn_implementation="eager", **size)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        model.transformer.wte.weight[EOS] *= eos_boost
    return model


def run_side(side: str, model, n: int, window: int, seed: int) -> tuple[int, float]:
    """(tokens the model produced, seconds) for ``n`` samples of at most ``window`` tokens."""
    start = time.perf_counter()
    if side == "official":
        torch.manual_seed(seed)
        rows = official.sample_official(model, START, n, max_length=window, eos_id=EOS, top_k=TOP_K)
        # the official rows leave EOS out: count the step that produced it
        tokens = sum(len(r) + (len(r) < window - 1) for r in rows)
    else:
        rows = sample_with_cache(model, START, n, max_length=window, eos_id=EOS, top_k=TOP_K, temperature=1.0,
                                 batch_size=n, generator_seed=seed)
        tokens = sum(len(r) for r in rows)
    return tokens, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds: the demo shape, short windows")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256], help="window in tokens")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--eos-boost", type=float, default=1.0, help="scale of EOS's embedding row")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="recorded as is, e.g. what else was running")
    parser.add_argument("--out", type=Path, default=result_path("generation", "cpu"))
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.lengths, args.samples, args.rounds = [next(iter(SIZES))], [32], 8, 1
    torch.set_num_threads(args.threads)
    started, load_start = time.perf_counter(), list(os.getloadavg())
    rows = []
    for label in args.sizes:
        for window in args.lengths:
            model = build(SIZES[label], window, args.eos_boost)
            totals = {"official": [0, 0.0], "ours": [0, 0.0]}
            for r in range(args.rounds):
                for side in ("official", "ours"):
                    tokens, seconds = run_side(side, model, args.samples, window, seed=r)
                    totals[side][0] += tokens
                    totals[side][1] += seconds
            rate = {side: tokens / seconds for side, (tokens, seconds) in totals.items()}
            row = {"size": label, "window": window, "samples": args.samples, "rounds": args.rounds,
                   "official_tokens_per_second": round(rate["official"], 1),
                   "ours_tokens_per_second": round(rate["ours"], 1),
                   "ours_over_official": round(rate["ours"] / rate["official"], 2),
                   "tokens": {side: t for side, (t, _) in totals.items()}}
            rows.append(row)
            print(f"{label}, window {window}: official {rate['official']:.0f} tok/s, ours {rate['ours']:.0f} "
                  f"({row['ours_over_official']}x)", flush=True)
    result = {
        "benchmark": "pseudo-sample generation: ours (rational_lamol.pseudo.sample_with_cache) vs the official "
        "LAMOL sampler (tests/oracles/lamol_sampler_official.py), interleaved, random GPT-2s, top-k 20",
        "command": command_line(),
        "note": args.note,
        "eos_boost": args.eos_boost,
        "environment": speed_environment(load_start),
        "runs": rows,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
