"""Benchmark: ``train_task``'s steps against a minimal PyTorch loop on the same model and batches.

The minimal loop is what a user would write: the same collated QA + LM rows as one forward
(``2B`` rows), Hugging Face's own causal-LM loss (``labels=``), ``loss.backward()``, plain
``torch.optim.AdamW`` and ``zero_grad``. Ours is :func:`rational_lamol.trainer.train_task` as the
pipeline calls it: Accelerate, the weighted LAMOL loss, gradient clipping, the warm-up schedule,
callbacks and the progress bar. Both start from the same weights and run interleaved in rounds in
one process (round r: ours, then minimal), so load on the machine falls on both. A step's time is
measured from one optimizer step to the next (a callback's clock), so one-time set-up is left out.

Reported: positions/s (rows x tokens per second, QA and LM rows alike) per side, ours' overhead
(minimal / ours), and the training FLOP rate as a share of the machine's measured matmul rate
(training FLOPs per position ~ 6 x parameters in matmuls + 12 x blocks x window x width).

    python benchmarks/bench_training_overhead.py                       # GPT-2-small shape, minutes
    python benchmarks/bench_training_overhead.py --quick               # seconds: a 2-block model

Writes ``benchmarks/results/training_overhead/cpu.json`` (``--out``: elsewhere).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rational_lamol.config import TrainingConfig
from rational_lamol.lamol import collate
from rational_lamol.tasks import TrainSequence
from rational_lamol.trainer import train_task

from common import command_line, matmul_rate, result_path, speed_environment, write_result


class _Tokenizer:  # train_task reads only pad_token_id
    pad_token_id = 0


class StepClock:
    """A training callback that records the time of every optimizer step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_start(self, model) -> None:
        self.times = []

    def on_after_optimizer_step(self, model) -> None:
        self.times.append(time.perf_counter())


def sequences(n: int, length: int, vocab: int, seed: int) -> list[TrainSequence]:
    """``n`` sequences of exactly ``length`` tokens: every batch has the same shape on both sides."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(5, vocab, (length,), generator=g).tolist()
        out.append(TrainSequence(qa_ids=ids, answer_start=length - 4, gen_id=2, task="x"))
    return out


def ours(model, seqs: list[TrainSequence], config: TrainingConfig) -> list[float]:
    """Seconds of each step of ``train_task`` after the first."""
    clock = StepClock()
    train_task(model, _Tokenizer(), seqs, config, callbacks=[clock], desc="ours")
    return [b - a for a, b in zip(clock.times[:-1], clock.times[1:], strict=True)]


def minimal(model, seqs: list[TrainSequence], config: TrainingConfig) -> list[float]:
    """Seconds of each step of a plain loop after the first, on the same rows in the same shapes."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    model.train()
    times = []
    for b0 in range(0, len(seqs), config.batch_size):
        batch = collate(seqs[b0 : b0 + config.batch_size], 0)
        ids = torch.cat([batch.qa_ids, batch.lm_ids])
        mask = torch.cat([batch.qa_mask, batch.lm_mask])
        labels = torch.cat([batch.qa_labels, batch.lm_labels])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter())
    return [b - a for a, b in zip(times[:-1], times[1:], strict=True)]


def flops_per_position(model, window: int) -> float:
    """Training FLOPs per position: 6 x the parameters used in matmuls (every 2-D weight but the
    position table; the tied input embedding counts once, as the LM head) plus attention's scores
    and mixing (forward 4 x blocks x window x width, times 3 with the backward)."""
    cfg = model.config
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "wpe" not in n)
    return 6 * matmul_params + 12 * cfg.n_layer * window * cfg.n_embd


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds: a 2-block model, short rows")
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--length", type=int, default=128, help="tokens per QA row")
    parser.add_argument("--batch", type=int, default=4, help="examples per step (2 x batch rows)")
    parser.add_argument("--steps", type=int, default=6, help="steps per side and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="recorded as is, e.g. what else was running")
    parser.add_argument("--out", type=Path, default=result_path("training_overhead", "cpu"))
    args = parser.parse_args(argv)
    if args.quick:
        args.blocks, args.width, args.vocab, args.length, args.steps, args.rounds = 2, 64, 500, 32, 4, 1
    torch.set_num_threads(args.threads)
    config = GPT2Config(n_layer=args.blocks, n_head=max(1, args.width // 64), n_embd=args.width,
                        vocab_size=args.vocab, n_positions=args.length + 2, bos_token_id=1,
                        eos_token_id=1, pad_token_id=0, attn_implementation="eager")
    torch.manual_seed(0)
    base = GPT2LMHeadModel(config)
    seqs = sequences(args.batch * args.steps, args.length, args.vocab, seed=0)
    train = TrainingConfig(epochs=1, lr=1e-4, batch_size=args.batch, device="cpu", warmup=0.1)
    positions_per_step = 2 * args.batch * (args.length + 1)  # QA and LM rows, padded to length + 1
    started, load_start = time.perf_counter(), list(os.getloadavg())
    ours_steps, minimal_steps = [], []
    for _ in range(args.rounds):
        ours_steps += ours(copy.deepcopy(base), seqs, train)
        minimal_steps += minimal(copy.deepcopy(base), seqs, train)
    rate = matmul_rate(args.width)
    ours_pps = positions_per_step * len(ours_steps) / sum(ours_steps)
    minimal_pps = positions_per_step * len(minimal_steps) / sum(minimal_steps)
    flops = flops_per_position(base, args.length + 1)
    result = {
        "benchmark": "train_task vs a minimal PyTorch loop (same model, batches and AdamW), interleaved",
        "command": command_line(),
        "note": args.note,
        "model": {"n_layer": args.blocks, "n_embd": args.width, "vocab": args.vocab, "random_init": True},
        "batch": {"examples": args.batch, "rows": 2 * args.batch, "tokens_per_row": args.length + 1},
        "steps_timed_per_side": len(ours_steps),
        "environment": speed_environment(load_start),
        "ours_positions_per_second": round(ours_pps, 1),
        "minimal_positions_per_second": round(minimal_pps, 1),
        "ours_overhead": round(minimal_pps / ours_pps, 3),
        "matmul_flops_per_second": round(rate),
        "ours_share_of_matmul_rate": round(ours_pps * flops / rate, 3),
        "minimal_share_of_matmul_rate": round(minimal_pps * flops / rate, 3),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print(f"ours {ours_pps:.1f} positions/s, minimal {minimal_pps:.1f}: overhead {minimal_pps / ours_pps:.3f}x; "
          f"ours at {result['ours_share_of_matmul_rate']:.0%} of the matmul rate", flush=True)
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
