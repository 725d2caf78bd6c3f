"""Training one task: AdamW (no decay on biases and norms), grad-norm clip, linear warm-up then
linear decay, autocast, Hugging Face Accelerate for several processes (docs/algorithms.md §1).

:func:`train_task` is the hook other steps build on: callbacks see the model when training
starts and after every optimizer step (the critical-freezing ``Freezer`` restores frozen weight
slices there), and parameters with ``requires_grad=False`` never enter the optimizer.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from tqdm.auto import tqdm

from rational_lamol.config import TrainingConfig
from rational_lamol.lamol import collate, lamol_loss
from rational_lamol.streams import random_stream
from rational_lamol.tasks import TrainSequence

log = logging.getLogger(__name__)


@runtime_checkable
class TrainingCallback(Protocol):
    def on_train_start(self, model) -> None: ...

    def on_after_optimizer_step(self, model) -> None: ...


@dataclass
class TrainStats:
    steps: int = 0
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    final_loss: float = float("nan")
    losses: list[float] = field(default_factory=list)  # mean loss per epoch

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"steps": self.steps, "examples": self.examples, "tokens": self.tokens,
                "seconds": round(self.seconds, 3), "tokens_per_second": round(self.tokens_per_second, 1),
                "final_loss": self.final_loss, "epoch_losses": self.losses}


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices only: biases and norm weights (1-D tensors) get none. Frozen
    (``requires_grad=False``) parameters are left out entirely."""
    decay, no_decay = [], []
    for _name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    n_decay, n_no = sum(p.numel() for p in decay), sum(p.numel() for p in no_decay)
    log.debug("optimizer: %d decayed and %d non-decayed parameter elements", n_decay, n_no)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def linear_schedule(step: int, total: int, warmup: int, floor: float = 0.0) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then linear decay to ``floor`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    decay = max(0.0, (total - step) / max(1, total - warmup))
    return decay if floor == 0.0 else floor + (1.0 - floor) * decay


def process_state():
    """Accelerate's process state. A CPU launch (``ACCELERATE_USE_CPU``) of several processes is
    one gloo group: a plain ``PartialState()`` would take each process for a run of its own."""
    from accelerate.state import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def end_process_group() -> None:
    """End a multi-process run: every process waits for the others, then destroys the group (no-op
    in a single process). Called once the processes no longer communicate: a gloo group left to
    interpreter shutdown, or destroyed by one process while another still writes, aborts a process
    now and then ("terminate called without an active exception") after a run that finished."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def get_accelerator(config: TrainingConfig):
    """One Accelerator per process, set up from the config's device and precision.

    ``device = "auto"`` follows the launcher: under ``accelerate launch --cpu`` the run stays on CPU
    (fp32) even where a GPU is visible. In a single process a new run may change device or precision
    (tests, notebooks): Accelerate keeps one process-wide state, so it is reset first.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import parse_flag_from_env

    from rationale_commons.runtime import autocast_dtype, choose_device

    cpu = config.device == "cpu" or parse_flag_from_env("ACCELERATE_USE_CPU")
    device = "cpu" if cpu else choose_device(config.device)
    dtype = autocast_dtype(device, config.precision)
    mixed = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")
    if PartialState._shared_state and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=cpu, mixed_precision=mixed)


def schedule_steps(n_sequences: int, config: TrainingConfig, world: int = 1) -> int:
    """Optimizer steps of a full training run on ``n_sequences`` (all processes together)."""
    per_proc = max(1, config.batch_size // world)
    return math.ceil(n_sequences / (per_proc * world) / config.grad_accum) * config.epochs


def steps_for_share(share: float, total: int) -> int:
    """The optimizer steps a run stopped at ``share`` of a ``total``-step schedule takes (at least one)."""
    return max(1, math.ceil(share * total))


def train_task(
    model,
    tokenizer,
    train_sequences: Sequence[TrainSequence],
    config: TrainingConfig,
    *,
    callbacks: Sequence[TrainingCallback] = (),
    accelerator=None,
    seed: int = 0,
    desc: str = "train",
    step_share: float = 1.0,
):
    """Train ``model`` in place on ``train_sequences`` for ``config.epochs`` epochs; return stats.

    ``step_share`` < 1 stops after that share of the schedule's steps (the learning-rate schedule
    is the full run's): the result is the full run's model at that point, not a shorter run.

    Data order and dropout are drawn from ``seed`` alone (:mod:`rational_lamol.streams`), so a
    resumed run retrains a task identically and methods that see the same seed see the same
    batches. Several
    processes (``accelerate launch``) split every batch (data parallel); the returned examples and
    tokens count every process's share.
    """
    if accelerator is None:
        accelerator = get_accelerator(config)
    for cb in callbacks:
        cb.on_train_start(model)
    groups = parameter_groups(model, config.weight_decay)
    if not any(g["params"] for g in groups):
        raise ValueError("every parameter is frozen: nothing to train")
    optimizer = torch.optim.AdamW(groups, lr=config.lr)

    world = accelerator.num_processes
    per_proc = max(1, config.batch_size // world)
    n = len(train_sequences)
    total = schedule_steps(n, config, world)
    stop = steps_for_share(step_share, total)
    warmup = int(config.warmup * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: linear_schedule(s, total, warmup, config.lr_floor))
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    pad_id = tokenizer.pad_token_id

    stats = TrainStats()
    rng = random.Random(seed)
    start = time.perf_counter()
    wrapped.train()
    bar = tqdm(total=total, desc=desc, disable=not accelerator.is_local_main_process, leave=False)
    with random_stream(seed):  # batches and dropout: a function of the seed alone
        for _epoch in range(config.epochs):
            order = list(range(n))
            rng.shuffle(order)
            # every process takes its own slice of each global batch
            global_bs = per_proc * world
            epoch_losses = []
            micro = 0
            for b0 in range(0, n, global_bs):
                idx = order[b0 : b0 + global_bs][accelerator.process_index :: world]
                if not idx:  # a short last batch: reuse the first items so every process steps
                    idx = order[: per_proc]
                batch = collate([train_sequences[i] for i in idx], pad_id, ans_weight=config.ans_weight)
                batch = batch.to(accelerator.device)
                with accelerator.autocast():
                    loss, parts = lamol_loss(wrapped, batch, config.lm_lambda)
                accelerator.backward(loss / config.grad_accum)
                epoch_losses.append(float(loss.detach()))
                stats.examples += len(idx)
                stats.tokens += int(batch.qa_mask.sum()) + (int(batch.lm_mask.sum()) if config.lm_lambda else 0)
                micro += 1
                last = b0 + global_bs >= n
                if micro % config.grad_accum == 0 or last:
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    for cb in callbacks:
                        cb.on_after_optimizer_step(model)
                    stats.steps += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{parts['qa']:.3f}/{parts['lm']:.3f}")
                    if stats.steps >= stop:
                        break
            stats.losses.append(sum(epoch_losses) / max(1, len(epoch_losses)))
            if stats.steps >= stop:
                break
    bar.close()
    if world > 1:  # each process counted its own slice of every batch: report all of them
        counts = torch.tensor([stats.examples, stats.tokens], device=accelerator.device)
        stats.examples, stats.tokens = (int(v) for v in accelerator.reduce(counts, reduction="sum").tolist())
    stats.seconds = time.perf_counter() - start
    stats.final_loss = stats.losses[-1] if stats.losses else float("nan")
    wrapped.eval()
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(wrapped)
    unwrapped.eval()
    # the accelerator keeps every model and optimizer it prepared: one run trains many task models
    # (GBs each at 135M parameters, with AdamW's state), so let them go once this one is trained
    accelerator.free_memory()
    return stats
