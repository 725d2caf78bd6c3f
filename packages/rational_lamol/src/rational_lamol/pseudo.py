"""LAMOL pseudo-samples: the model generates old tasks' examples from their generation token
(docs/algorithms.md §1).

Sampling is batched (every row starts from the same GEN token, so no padding) with top-k,
temperature 1 and the KV cache, until EOS or the window; a finished row leaves the batch. A sample is kept
only if it holds exactly one ``__ans__`` with a non-empty question before it and a non-empty
answer after it, and no other special token; :class:`PseudoReport` counts what was kept and
each sample's verdict (:mod:`rational_lamol.pseudo_quality`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from rational_lamol.modeling import cache_names
from rational_lamol.pseudo_quality import (
    SampleProfile,
    classify_pseudo_sample,
    malformed_reason,
    pooled,
    tally,
    until_eos,
)
from rational_lamol.streams import random_stream
from rational_lamol.tasks import SpecialIds, TrainSequence


@dataclass
class ParsedSample:
    question_ids: list[int]  # everything before __ans__ ("c q")
    answer_ids: list[int]  # everything after __ans__, up to EOS (exclusive)


def parse_pseudo_sample(ids: Sequence[int], ids_map: SpecialIds) -> ParsedSample | None:
    """Parse generated ids (after GEN, GEN excluded); ``None`` when malformed.

    The sample ends at the first EOS (or where generation stopped). Rejected: no ``__ans__`` or
    more than one, an empty question or answer, any other special token inside
    (:func:`~rational_lamol.pseudo_quality.malformed_reason` says which).
    """
    if malformed_reason(ids, ids_map) is not None:
        return None
    ids = until_eos(ids, ids_map.eos)
    k = ids.index(ids_map.ans)
    return ParsedSample(question_ids=ids[:k], answer_ids=ids[k + 1 :])


@dataclass
class PseudoReport:
    requested: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, list[str]] = field(default_factory=dict)  # every sample's verdict, per task
    generated_tokens: int = 0
    seconds: float = 0.0
    samples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # the first few per task, verbatim

    def quality(self) -> dict:
        """Counts per task (see :func:`~rational_lamol.pseudo_quality.tally`) and over the stage."""
        by_task = {label: tally(v, self.kept.get(label, 0)) for label, v in self.verdicts.items()}
        return {"total": pooled(by_task.values()), "by_task": by_task}

    def as_dict(self) -> dict:
        req, kept = sum(self.requested.values()), sum(self.kept.values())
        return {
            "requested": self.requested,
            "kept": self.kept,
            "kept_fraction": round(kept / req, 4) if req else None,
            "generated_tokens": self.generated_tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.generated_tokens / self.seconds, 1) if self.seconds else None,
            "quality": self.quality(),
            "samples": self.samples,
        }


@torch.inference_mode()  # no autograd bookkeeping at all: the samples leave as Python lists
def sample_with_cache(
    model, start_id: int, n: int, *, max_length: int, eos_id: int, top_k: int, temperature: float,
    batch_size: int, generator_seed: int,
) -> list[list[int]]:
    """``n`` samples of at most ``max_length`` tokens (GEN included; GEN not returned, EOS kept)."""
    device = next(model.parameters()).device
    out: list[list[int]] = []
    with random_stream(generator_seed):
        for b0 in range(0, n, batch_size):
            out += _sample_batch(model, start_id, min(batch_size, n - b0), device, max_length=max_length,
                                 eos_id=eos_id, top_k=top_k, temperature=temperature)
    return out


def sample_top_k(logits: torch.Tensor, uniforms: torch.Tensor, top_k: int, temperature: float) -> torch.Tensor:
    """One token per row of ``logits`` (B, V) from the softmax of its ``top_k`` largest logits / T
    (``top_k`` 0: the whole vocabulary), by inverting the CDF at ``uniforms`` (B,) in [0, 1).

    Only k values per row are normalized and summed (``multinomial`` over a vocabulary-wide
    softmax did the same draw at V / k times the cost). Exactly k tokens are kept: a logit tied
    with the k-th largest is left out where the top-k filter of ``generate`` kept it.
    """
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        values, index = logits.topk(top_k, dim=-1)
    else:
        values, index = logits.sort(dim=-1, descending=True)
    cdf = values.softmax(dim=-1).cumsum(dim=-1)  # (B, k)
    pick = (cdf < uniforms[:, None] * cdf[:, -1:]).sum(dim=-1).clamp(max=values.shape[-1] - 1)
    return index.gather(-1, pick[:, None]).squeeze(-1)


def _sample_batch(
    model, start_id: int, rows: int, device, *, max_length: int, eos_id: int, top_k: int, temperature: float,
) -> list[list[int]]:
    """``rows`` samples from torch's global CPU generator (seeded by the caller), with the KV cache.

    Every row draws one uniform per step, running or not, so a row's draws do not depend on when
    the others stop; a row that emits EOS leaves the batch (and the cache) at once, so the work
    follows the tokens still being generated. All rows start from the same token, so the batch
    has no padding: the attention mask is all ones and positions follow the cache.
    """
    from transformers import DynamicCache

    cache_arg, keep = cache_names(model)
    cache = DynamicCache()
    running = torch.arange(rows)  # the rows still generating, by their index in the batch
    tokens = torch.full((rows,), start_id, dtype=torch.long)
    out: list[list[int]] = [[] for _ in range(rows)]
    for step in range(max_length - 1):
        mask = torch.ones((len(running), step + 1), dtype=torch.long, device=device)  # no padding anywhere
        logits = model(input_ids=tokens[:, None].to(device), attention_mask=mask, use_cache=True,
                       **{cache_arg: cache}, **keep).logits
        uniforms = torch.rand(rows)[running]
        tokens = sample_top_k(logits[:, -1], uniforms.to(device), top_k, temperature).cpu()
        for row, token in zip(running.tolist(), tokens.tolist(), strict=True):
            out[row].append(token)
        running_on = tokens != eos_id
        if not bool(running_on.any()):
            break
        if not bool(running_on.all()):
            kept = running_on.nonzero().squeeze(-1)
            cache.batch_select_indices(kept.to(device))
            running, tokens = running[kept], tokens[kept]
    return out


@torch.no_grad()
def sample_without_cache(
    model, start_id: int, n: int, *, max_length: int, eos_id: int, top_k: int, temperature: float,
    batch_size: int, generator_seed: int,
) -> list[list[int]]:
    """The plain token-by-token loop (full forward every step, no KV cache): the benchmark's
    baseline. Same sampling rule and draws as :func:`sample_with_cache`."""
    device = next(model.parameters()).device
    out: list[list[int]] = []
    with random_stream(generator_seed):
        for b0 in range(0, n, batch_size):
            rows = min(batch_size, n - b0)
            seqs = torch.full((rows, 1), start_id, dtype=torch.long, device=device)
            done = torch.zeros(rows, dtype=torch.bool, device=device)
            while seqs.shape[1] < max_length and not bool(done.all()):
                logits = model(input_ids=seqs, use_cache=False).logits[:, -1]
                nxt = sample_top_k(logits, torch.rand(rows).to(device), top_k, temperature)
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                seqs = torch.cat([seqs, nxt[:, None]], dim=1)
                done |= nxt == eos_id
            out += [_cut(row, eos_id) for row in seqs[:, 1:].tolist()]
    return out


def _task_seed(seed: int, task_index: int, process: int = 0) -> int:
    """The generator seed of one task's samples (and one process's share) within a replay."""
    return (seed + 1009 * task_index + process) % 2**63


def _cut(row: list[int], eos_id: int) -> list[int]:
    """Up to and including the first EOS."""
    return row[: row.index(eos_id) + 1] if eos_id in row else row


def generate_pseudo_samples(
    model,
    tokenizer,
    counts: dict[str, int],
    ids_map: SpecialIds,
    *,
    profiles: Mapping[str, SampleProfile],
    max_length: int,
    top_k: int,
    temperature: float,
    batch_size: int,
    seed: int,
    accelerator=None,
    keep_samples: int = 3,
) -> tuple[list[TrainSequence], PseudoReport]:
    """Pseudo-samples of old tasks, ``counts[task]`` each, as training sequences.

    With a shared generation token the counts are summed and sampled from ``__gen__`` (the
    samples then carry no task name: they are labelled ``"__shared__"`` and judged against the
    union of the tasks' ``profiles``). Every sample gets a verdict in the report; the first
    ``keep_samples`` of each task are kept there verbatim.
    """
    import time

    report = PseudoReport()
    plan: list[tuple[str, int, int, SampleProfile]] = []  # (label, gen id, n, profile)
    if ids_map.shared_gen:
        tasks = [task for task, n in counts.items() if n]
        if tasks:
            shared = functools.reduce(operator.or_, (profiles[t] for t in tasks))
            plan.append(("__shared__", ids_map.gen_id(""), sum(counts.values()), shared))
    else:
        plan.extend((task, ids_map.gen_id(task), n, profiles[task]) for task, n in counts.items() if n)
    seqs: list[TrainSequence] = []
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    for k, (label, gen_id, n, profile) in enumerate(plan):
        report.requested[label] = n
        # several processes: each samples its share, then all gather every sample
        if accelerator is not None and accelerator.num_processes > 1:
            share = [n // accelerator.num_processes + (1 if r < n % accelerator.num_processes else 0)
                     for r in range(accelerator.num_processes)]
            mine = share[accelerator.process_index]
            rows = sample_with_cache(model, gen_id, mine, max_length=max_length, eos_id=ids_map.eos,
                                     top_k=top_k, temperature=temperature,
                                     batch_size=batch_size, generator_seed=_task_seed(seed, k, accelerator.process_index))
            from accelerate.utils import gather_object

            rows = gather_object(rows)
        else:
            rows = sample_with_cache(model, gen_id, n, max_length=max_length, eos_id=ids_map.eos,
                                     top_k=top_k, temperature=temperature, batch_size=batch_size,
                                     generator_seed=_task_seed(seed, k))
        kept = 0
        verdicts = report.verdicts.setdefault(label, [])
        for row in rows:
            report.generated_tokens += len(row)
            verdicts.append(classify_pseudo_sample(row, ids_map, tokenizer.decode, profile))
            if len(verdicts) <= keep_samples:
                report.samples.setdefault(label, []).append(
                    {"verdict": verdicts[-1], "text": tokenizer.decode(row, skip_special_tokens=False)})
            parsed = parse_pseudo_sample(row, ids_map)
            if parsed is None:
                continue
            kept += 1
            qa = [*parsed.question_ids, ids_map.ans, *parsed.answer_ids, ids_map.eos]
            seqs.append(TrainSequence(qa_ids=qa, answer_start=len(parsed.question_ids) + 1, gen_id=gen_id,
                                      task=label, pseudo=True))
        report.kept[label] = kept
    report.seconds = time.perf_counter() - start
    model.train(was_training)
    return seqs, report
