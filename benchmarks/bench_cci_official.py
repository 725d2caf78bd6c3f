"""Benchmark: our CCI against the official r_lamol CCI arithmetic, side by side in one process.

The official side is ``tests/oracles/cci_official.py``: the per-example numpy algorithm of r_lamol's
``run_critical_freezing.py`` (one ``np.percentile`` and one ``pdist`` per attention row), with the two
documented fixes applied so that both compute the same scores (see that file). Both read the same
cropped attention maps of a randomly initialised GPT-2 (GPT-2-small shape by default: 12 blocks,
12 heads, d_model 768, vocabulary 50,257) pair, old and perturbed new. For each document length
(128 / 512 / 1,024 tokens) and example, interleaved: our lean forward (``attention_blocks``: the base
transformer, no LM head) of both models, the full forward with the LM head (first example only),
then block- and head-level scores, ours and official. Reported per size and level: official and
our s/example, their ratio, and our arithmetic's share of the lean forward; scores agree to 1e-12
and per-example choices (block argmin, the ``top_k`` lowest heads) are compared where untied, and
by the official rule (lower index first) applied to both score sets on every example.

    python benchmarks/bench_cci_official.py                 # minutes: 2 examples per size
    python benchmarks/bench_cci_official.py --quick         # seconds: 2 blocks, short documents

Writes ``benchmarks/results/cci_official/cpu.json`` (``--out``: elsewhere), with the machine, the
thread count and the load average at start and end (``--note``: e.g. what else was running).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from rational_lamol import cci
from rational_lamol.adapters import adapter_for

from common import (
    command_line,
    gpt2_pair,
    load_oracle,
    matmul_rate,
    rationale_spans,
    result_path,
    timed,
    write_result,
)

official = load_oracle("cci_official")


def full_forward(model, ids: torch.Tensor) -> torch.Tensor:
    """Today's forward before the lean one: the LM head model, logits included."""
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True, use_cache=False)
    return torch.stack(out.attentions, dim=1)


def lean_forward_flops(model, tokens: int) -> float:
    """FLOPs of one model's lean forward over ``tokens`` tokens: 2 x the blocks' matmul weights per
    token, plus attention's scores and mixing (2 x 2 x tokens^2 x width per block; the causal mask
    is not subtracted, as eager attention computes the full square). No LM head."""
    weights = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and ".h." in n)
    cfg = model.config
    return 2 * weights * tokens + 4 * cfg.n_layer * tokens**2 * cfg.n_embd


def untied_block(scores: np.ndarray) -> bool:
    return int((scores == scores.min()).sum()) == 1


def untied_heads(scores: np.ndarray, k: int) -> bool:
    flat = np.sort(scores, axis=None)
    return k >= flat.size or flat[k - 1] != flat[k]


def selection_floor(maps: list[np.ndarray], beta: float, repeats: int = 3) -> dict:
    """The least time, s, of an exact CCI arithmetic that selects with numpy, were it one fused pass
    over these maps (one ``(H, D, D)`` per block and model): the causal row prefixes that need a
    selection copied and sorted (row ``s`` sees ``p = s + 1`` keys; prefixes shorter than
    ``D - lo - 1`` leave a zero threshold), and every other entry read once, at the rate of ``any``
    over whole maps. Masks and counts are left out (a fused pass would count rows still in cache).

    Prefixes are grouped by the sort's padded length (numpy's AVX-512 sort of a row costs the same
    at every length up to the next power of two); rows up to ``cci.SORT_MAX_ENTRIES`` are sorted
    (faster than numpy's partition there), longer ones partitioned once, as cci selects them."""
    D = maps[0].shape[-1]
    lo = math.floor((D - 1) * ((100.0 - beta) / 100.0))  # as cci computes it
    p, groups = D - lo - 1, []
    while p <= D:
        top = min(D, 1 << (p - 1).bit_length())  # rows with prefixes p..top sort at top's length
        groups.append((p, top))
        p = top + 1
    copied_share = sum((p1 - p0 + 1) * p1 for p0, p1 in groups) / D**2

    def best_of(fn) -> float:
        return min(timed(fn)[1] for _ in range(repeats))

    def read_all() -> None:
        for m in maps:
            m.any()

    def sort_prefixes() -> None:  # each sorted copy freed at once, as the scores free theirs
        for m in maps:
            for p0, p1 in groups:
                rows = m[:, p0 - 1 : p1, :p1]
                if p1 <= cci.SORT_MAX_ENTRIES:
                    np.sort(rows, axis=-1)
                else:
                    np.partition(rows, p1 - (D - lo), axis=-1)

    read, sort = best_of(read_all), best_of(sort_prefixes)
    return {"read_maps_once": round(read, 6), "copy_and_sort_needed_prefixes": round(sort, 6),
            "copied_share_of_entries": round(copied_share, 3),
            "fused_pass": round(sort + read * (1 - copied_share), 6),
            "sort_lengths": [p1 for _, p1 in groups]}


def bench_size(old, new, D: int, n_examples: int, n_extra: int, top_k: int, vocab: int, seed: int,
               rate: float) -> dict:
    """Interleaved timings at one document length (``n_extra`` question/answer tokens follow it)."""
    rng = np.random.default_rng(seed + D)
    ads = adapter_for(old), adapter_for(new)
    span = torch.arange(D)  # the document opens the sequence: one contiguous span
    t = {k: 0.0 for k in ("lean", "full", "ours_block", "official_block", "ours_head", "official_head")}
    diff = {"block": 0.0, "head": 0.0}
    compared = {"block": [0, 0], "head": [0, 0]}  # untied examples: [compared, equal choices]
    same_rule = {"block": 0, "head": 0}  # examples where the official rule picks alike on both
    same_maps = True
    for i in range(n_examples):
        ids = torch.from_numpy(rng.integers(0, vocab, (1, D + n_extra)))
        gt = rationale_spans(D, rng)
        blocks, s = timed(lambda ids=ids: [ad.attention_blocks(ids) for ad in ads])
        t["lean"] += s
        if i == 0:
            full, s = timed(lambda ids=ids: [full_forward(m, ids)[0] for m in (old, new)])
            t["full"] = s
            same_maps = all(torch.equal(torch.stack(b, dim=1)[0], f) for b, f in zip(blocks, full, strict=True))
            del full
        crops = [torch.stack(b, dim=1)[0, :, :, :D, :D].numpy() for b in blocks]  # the official (L, H, D, D)
        if i == 0:
            floor = selection_floor([m.numpy() for b in blocks for m in cci._crop_blocks(b, 0, span)], beta=20.0)
        for level, ours_fn, off_fn in (
            ("block", cci.block_scores, official.block_scores),
            ("head", cci.head_scores, official.head_scores),
        ):
            ours, s = timed(
                lambda fn=ours_fn, blocks=blocks, gt=gt: fn(*(cci._crop_blocks(b, 0, span) for b in blocks), gt).numpy()
            )
            t[f"ours_{level}"] += s
            theirs, s = timed(lambda fn=off_fn, crops=crops, gt=gt: fn(*crops, gt.numpy()))
            t[f"official_{level}"] += s
            diff[level] = max(diff[level], float(np.abs(ours - theirs).max()))
            choose = official.block_choice if level == "block" else lambda sc: official.head_choice(sc, top_k)
            same_rule[level] += choose(ours) == choose(theirs)
            if level == "block" and untied_block(ours):
                compared["block"][0] += 1
                compared["block"][1] += official.block_choice(theirs) == int(ours.argmin())
            if level == "head" and untied_heads(ours, top_k):
                compared["head"][0] += 1
                compared["head"][1] += official.head_choice(theirs, top_k) == official.head_choice(ours, top_k)
    lean = t["lean"] / n_examples
    flops = 2 * lean_forward_flops(old, D + n_extra)
    row: dict = {
        "doc_tokens": D,
        "sequence_tokens": D + n_extra,
        "examples": n_examples,
        "forward_s_per_example": {
            "lean_both_models": round(lean, 3),
            "lean_gflops_both_models": round(flops / 1e9, 2),
            "lean_share_of_matmul_rate": round(flops / lean / rate, 3),
            "full_with_lm_head_both_models": round(t["full"], 3),
            "lm_head_share_of_full": round(1 - lean / t["full"], 3),
            "full_timed_on_examples": 1,
            "identical_attention_maps": same_maps,
        },
        "floor_s_per_example": {**floor, "examples_timed": 1},
    }
    floor_s = floor["fused_pass"]
    for level in ("block", "head"):
        ours, theirs = t[f"ours_{level}"] / n_examples, t[f"official_{level}"] / n_examples
        row[level] = {
            "official_s_per_example": round(theirs, 4),
            "ours_s_per_example": round(ours, 4),
            "official_over_ours": round(theirs / ours, 1),
            "official_over_floor": round(theirs / floor_s, 1),
            "ours_share_of_lean_forward": round(ours / lean, 4),
            "examples_per_second_forward_plus_ours": round(1 / (lean + ours), 4),
            "examples_per_second_forward_plus_official": round(1 / (lean + theirs), 4),
            "max_abs_score_difference": diff[level],
            "untied_examples_compared": compared[level][0],
            "same_choice": compared[level][1],
            "same_choice_by_the_official_rule": same_rule[level],
        }
        print(
            f"D={D:5d} {level:5s}: official {theirs:8.3f} s/ex, ours {ours:7.4f} s/ex "
            f"({theirs / ours:6.1f}x; a fused pass's floor {floor_s:.4f} s/ex, {theirs / floor_s:.0f}x), "
            f"ours / lean forward {ours / lean:6.1%} "
            f"(forward at {flops / lean / rate:.0%} of the matmul rate) "
            f"(lean forward {lean:.2f} s, full {t['full']:.2f} s), score diff {diff[level]:.1e}, "
            f"same choice {compared[level][1]}/{compared[level][0]} untied, "
            f"{same_rule[level]}/{n_examples} by the official rule on both",
            flush=True,
        )
    return row


def machine() -> dict:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpu_count": os.cpu_count(), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds: 2 small blocks, short documents")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 1024], help="document tokens")
    parser.add_argument("--examples", type=int, default=2, help="examples per size")
    parser.add_argument("--blocks", type=int, default=12, help="blocks of the model (GPT-2-small: 12)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--top-k", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="recorded as is, e.g. the load on the machine")
    parser.add_argument("--out", type=Path, default=result_path("cci_official", "cpu"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n_extra = 12  # question, __ans__ and answer tokens after the document
    if args.quick:
        shape = {"n_layer": 2, "n_head": 4, "n_embd": 64, "vocab": 500}
        args.sizes = [32, 64]
    else:
        shape = {"n_layer": args.blocks, "n_head": 12, "n_embd": 768, "vocab": 50257}
    old, new = gpt2_pair(**shape, n_positions=max(args.sizes) + n_extra, seed=args.seed)
    results = {
        "benchmark": "CCI arithmetic: ours (rational_lamol.cci) vs the official r_lamol algorithm "
        "(tests/oracles/cci_official.py, per-example numpy, the two documented fixes applied), "
        "interleaved in one process; forward = our lean attention_blocks (no LM head, no stacking)",
        "command": command_line(),
        "note": args.note,
        "model": {**shape, "random_init": True, "new": "old + 50 % of each weight's std, Gaussian"},
        "beta": 20.0,
        "top_k": args.top_k,
        "environment": {
            **machine(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": list(os.getloadavg()),
        },
        "sizes": [],
    }
    rate = matmul_rate(shape["n_embd"])
    results["environment"]["matmul_flops_per_second"] = round(rate)
    start = time.perf_counter()
    for D in args.sizes:
        results["sizes"].append(
            bench_size(old, new, D, args.examples, n_extra, args.top_k, shape["vocab"], args.seed, rate)
        )
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    results["environment"]["load_average_at_end"] = list(os.getloadavg())
    write_result(args.out, results)
    return results


if __name__ == "__main__":
    main()
