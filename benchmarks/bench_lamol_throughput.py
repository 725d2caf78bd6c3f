"""LAMOL engine throughput: pseudo-sample generation (batched top-k sampling with the KV cache vs
a plain token-by-token loop without the cache) and training (tokens/s of `train_task`).

    python benchmarks/bench_lamol_throughput.py [--quick] [--threads N] [--device cpu]

Writes benchmarks/results/lamol_throughput/<device>.json. Models are fresh GPT-2s (random weights
never emit EOS early, so every sample runs to the window: both samplers do the same work).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rational_lamol.config import TrainingConfig
from rational_lamol.pseudo import sample_with_cache, sample_without_cache
from rational_lamol.tasks import TrainSequence
from rational_lamol.trainer import train_task
from rationale_commons.runtime import machine_info, write_json_atomic

from common import command_line, result_path

SIZES = {
    "demo (2L, d128)": dict(n_layer=2, n_head=4, n_embd=128),
    "small (4L, d256)": dict(n_layer=4, n_head=4, n_embd=256),
}


class _Tok:  # train_task only needs pad_token_id
    pad_token_id = 0


def build(size: dict, vocab: int, window: int, device: str):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=window, eos_token_id=1, bos_token_id=1, pad_token_id=0,
                     attn_implementation="eager", **size)
    return GPT2LMHeadModel(cfg).to(device).eval()


def bench_generation(model, *, n: int, window: int, batch: int, device: str) -> dict:
    out = {}
    for name, fn in (("kv_cache_batched", sample_with_cache), ("no_cache_loop", sample_without_cache)):
        kwargs = dict(max_length=window, eos_id=1, top_k=20, temperature=1.0, batch_size=batch, generator_seed=0)
        fn(model, 2, min(n, batch), **{**kwargs, "max_length": 8})  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        rows = fn(model, 2, n, **kwargs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        tokens = sum(len(r) for r in rows)
        out[name] = {"samples": n, "tokens": tokens, "seconds": round(dt, 3), "tokens_per_second": round(tokens / dt, 1)}
    out["speedup"] = round(out["kv_cache_batched"]["tokens_per_second"] / out["no_cache_loop"]["tokens_per_second"], 2)
    return out


def bench_training(model, *, n: int, window: int, batch: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    seqs = []
    for _ in range(n):
        length = int(torch.randint(window // 2, window - 1, (1,), generator=g))
        ids = torch.randint(5, model.config.vocab_size, (length,), generator=g).tolist()
        seqs.append(TrainSequence(qa_ids=ids, answer_start=length - 3, gen_id=2, task="x"))
    cfg = TrainingConfig(epochs=1, lr=1e-3, batch_size=batch, device=device, lm_lambda=0.25)
    train_task(model, _Tok(), seqs[: batch * 2], cfg)  # warm-up
    stats = train_task(model, _Tok(), seqs, cfg)
    return {"sequences": n, "batch_size": batch, **stats.as_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/lamol_throughput/<device>.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    window, vocab = 96, 1000
    n_gen, n_train = (16, 32) if args.quick else (64, 128)
    out = args.out or result_path("lamol_throughput", args.device.split(":")[0])
    results = {"command": command_line(), "device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "machine": machine_info(args.device), "window": window, "vocab": vocab, "runs": {}}
    for label, size in SIZES.items():
        model = build(size, vocab, window, args.device)
        gen = bench_generation(model, n=n_gen, window=window, batch=32, device=args.device)
        train = bench_training(model, n=n_train, window=window, batch=16, device=args.device)
        results["runs"][label] = {"generation": gen, "training": train}
        print(f"{label}: generation {gen['kv_cache_batched']['tokens_per_second']:.0f} tok/s with cache vs "
              f"{gen['no_cache_loop']['tokens_per_second']:.0f} without ({gen['speedup']}x); "
              f"training {train['tokens_per_second']:.0f} tok/s", flush=True)
    write_json_atomic(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
