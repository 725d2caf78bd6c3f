"""Evaluation: greedy decoding after ``__ans__`` and exact match of the normalized answer
(docs/algorithms.md §1; the reference code sampled at test time, we decode greedily).

Prompts ``c q __ans__`` are left-padded and decoded in batches with the KV cache; position ids
follow the attention mask so padding does not shift positions (GPT-2 and Llama alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rational_lamol.answers import normalize_answer
from rational_lamol.modeling import cache_names
from rational_lamol.tasks import SpecialIds, TaskData


@torch.no_grad()
def greedy_decode(
    model, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos_id: int, pad_id: int, batch_size: int = 32
) -> list[list[int]]:
    """Greedy continuation of each prompt (EOS and what follows removed)."""
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths together
    results: list[list[int]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    cache_arg, keep = cache_names(model)
    for b0 in range(0, len(order), batch_size):
        idx = order[b0 : b0 + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.tensor([[pad_id] * (width - len(prompts[i])) + list(prompts[i]) for i in idx], device=device)
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx], device=device)
        pos = (mask.cumsum(-1) - 1).clamp_min(0)  # (B, T)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **keep)
        past = getattr(out, cache_arg)
        nxt = out.logits[:, -1].argmax(-1)  # (B,)
        gen = [nxt]
        done = nxt == eos_id
        last_pos = pos[:, -1]
        for _ in range(max_new_tokens - 1):
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            last_pos = last_pos + 1
            out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                        use_cache=True, **{cache_arg: past}, **keep)
            past = getattr(out, cache_arg)
            nxt = out.logits[:, -1].argmax(-1)
            gen.append(nxt)
            done |= nxt == eos_id
        rows = torch.stack(gen, dim=1).tolist()  # (B, new)
        for i, row in zip(idx, rows, strict=True):
            results[i] = row[: row.index(eos_id)] if eos_id in row else row
    model.train(was_training)
    return results


def max_answer_tokens(task: TaskData, tokenizer) -> int:
    answers = {task.answers.get(lab, lab) for lab in task.splits.labels()} or {"x"}
    return max(len(tokenizer(" " + a, add_special_tokens=False)["input_ids"]) for a in answers) + 1


def evaluate_task(
    model, tokenizer, task: TaskData, ids_map: SpecialIds, *, max_length: int, batch_size: int = 32,
    split: str = "test", accelerator=None, return_predictions: bool = False,
):
    """Exact-match score (percent) of greedy answers on one split of one task."""
    examples = task.splits[split]
    encoded = [task.encode(ex, tokenizer, max_length, ids_map.ans) for ex in examples]
    prompts = [e.prompt_ids for e in encoded]
    gold = [normalize_answer(task.answer(ex)) for ex in examples]
    n_new = max_answer_tokens(task, tokenizer)
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        r, w = accelerator.process_index, accelerator.num_processes
        mine = list(range(r, len(prompts), w))
        outs = greedy_decode(model, [prompts[i] for i in mine], max_new_tokens=n_new, eos_id=ids_map.eos,
                             pad_id=ids_map.pad, batch_size=batch_size)
        pairs = gather_object(list(zip(mine, outs, strict=True)))
        decoded: list[list[int]] = [[] for _ in prompts]
        for i, row in pairs:
            decoded[i] = row
    else:
        decoded = greedy_decode(model, prompts, max_new_tokens=n_new, eos_id=ids_map.eos, pad_id=ids_map.pad,
                                batch_size=batch_size)
    preds = [normalize_answer(tokenizer.decode(row, skip_special_tokens=True)) for row in decoded]
    correct = sum(p == g for p, g in zip(preds, gold, strict=True))
    score = 100.0 * correct / max(1, len(gold))
    if return_predictions:
        return score, preds
    return score
