"""The official LAMOL pseudo-sample sampler (chho33/LAMOL ``utils.py``: ``create_extra_data``,
``sample_sequence``, ``logits_to_tokens``), transcribed for today's transformers.

What it does, as the official code does it: every sample keeps its own past (per layer, the
sample's keys and values, views into the batch that produced them); each step gathers the samples
still running that have the shortest length, ``torch.stack``s their pasts into a batch (a copy of
every running sample's whole past, every step), runs the model on their last token, filters the
logits to the top k (``logits < topk[..., -1]`` set to -inf), ``softmax``, ``torch.multinomial``,
and drops a sample at EOS (not appended) or at ``max_length``. Two adaptations, neither changing
the work per token: the past is handed to the model as a ``DynamicCache`` built from the stacked
tensors (the old ``past=`` tuple is gone), and the decode batch is every running sample (the
official batch size came from a GPU memory budget; on CPU all samples fit).

Used by ``benchmarks/bench_generation.py`` as the baseline our sampler is timed against.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F


def top_k_filtering(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """``top_k_top_p_filtering`` with top_p = 0: logits below the k-th largest set to -inf (in place)."""
    top_k = min(top_k, logits.size(-1))
    if top_k > 0:
        logits[logits < torch.topk(logits, top_k)[0][..., -1, None]] = -float("inf")
    return logits


def logits_to_tokens(next_logits: torch.Tensor, top_k: int) -> torch.Tensor:
    probs = F.softmax(top_k_filtering(next_logits, top_k), dim=-1)
    return torch.multinomial(probs, num_samples=1)


def _cache(past: list[list[tuple[torch.Tensor, torch.Tensor] | None]]):
    """Per layer, the stacked per-sample (keys, values) as a ``DynamicCache`` (empty at step 0)."""
    from transformers import DynamicCache

    if past[0][0] is None:
        return DynamicCache()
    return DynamicCache(ddp_cache_data=[(torch.stack([k for k, _ in layer]), torch.stack([v for _, v in layer]))
                                        for layer in past])


@torch.no_grad()
def sample_official(model, start_id: int, n: int, *, max_length: int, eos_id: int, top_k: int,
                    temperature: float = 1.0) -> list[list[int]]:
    """``n`` samples from ``start_id`` (excluded from the output, EOS excluded as officially)."""
    n_layer = model.config.num_hidden_layers
    qa_results = [torch.tensor([start_id]) for _ in range(n)]
    all_pasts: list[list[tuple[torch.Tensor, torch.Tensor] | None]] = [[None] * n for _ in range(n_layer)]
    need_process = OrderedDict((i, None) for i in range(n))
    while need_process:
        shortest_len = len(qa_results[next(iter(need_process))])
        remove_ids = []
        batch_ids = [i for i in need_process if len(qa_results[i]) == shortest_len]
        input_ids = torch.stack([qa_results[i][-1:] for i in batch_ids])
        past = [[all_pasts[layer][i] for i in batch_ids] for layer in range(n_layer)]
        out = model(input_ids=input_ids, past_key_values=_cache(past), use_cache=True)
        next_tokens = logits_to_tokens(out.logits[..., -1, :] / temperature, top_k)
        cache = out.past_key_values
        for j, cur_id in enumerate(batch_ids):
            if next_tokens[j] == eos_id:
                remove_ids.append(cur_id)
                continue
            qa_results[cur_id] = torch.cat((qa_results[cur_id], next_tokens[j]))
            if len(qa_results[cur_id]) == max_length:
                remove_ids.append(cur_id)
            else:
                for layer in range(n_layer):
                    all_pasts[layer][cur_id] = (cache.layers[layer].keys[j], cache.layers[layer].values[j])
        for i in remove_ids:
            del need_process[i]
            for layer in range(n_layer):
                all_pasts[layer][i] = None
    return [row[1:].tolist() for row in qa_results]
