"""Architecture adapters: where a causal LM keeps its blocks, its heads' weights and its attention.

CCI and critical freezing (docs/algorithms.md §2) talk about "block b" and "head h of block b". Each
architecture family stores those differently; one small class per family answers the few questions
the rest of the package asks, reading every size from the model's config (never 12, 64 or 768):

- ``blocks()`` / ``block_parameters(b)``: the transformer blocks and exactly block b's parameters
  (found by module identity, not by name substrings: block 1 never catches blocks 10 and 11).
- ``head_slices(b, h)``: index tuples selecting exactly the weights and biases owned by query head h.
- ``kv_head_slices(b, g)`` and :func:`kv_heads_to_freeze`: the grouped-query-attention rule.
- ``attention_blocks(input_ids, attention_mask)``: post-softmax attention, one ``(B, H, T, T)`` per
  block; ``attention_maps``: the same stacked, ``(B, L, H, T, T)``.

Head ownership
--------------
GPT-2 (``Conv1D``: ``y = x @ W + b``, ``W`` of shape (in, out)) fuses Q, K and V in ``c_attn``
with weight (E, 3E). Head h owns columns ``[k*E + h*d, k*E + (h+1)*d)`` for k = 0, 1, 2 (Q, K, V)
of ``c_attn.weight`` and the same entries of ``c_attn.bias``, and rows ``[h*d, (h+1)*d)`` of
``c_proj.weight`` (the rows that read head h's output). ``c_proj.bias`` is added once after all
heads are summed: no head owns it, so a head freeze leaves it trainable.

Llama-family models (``nn.Linear``: ``y = x @ W.T + b``, ``W`` of shape (out, in)) have separate
projections. Query head h owns rows ``[h*d, (h+1)*d)`` of ``q_proj.weight`` (and of ``q_proj.bias``
when ``attention_bias``) and columns ``[h*d, (h+1)*d)`` of ``o_proj.weight``. With grouped-query
attention, KV head g is shared by the ``r = n_heads / n_kv_heads`` query heads ``[g*r, (g+1)*r)``.
**GQA rule (our decision):** KV head g's rows of ``k_proj``/``v_proj`` (and their biases) are frozen
only when *all* r of its query heads are frozen — freezing them earlier would also freeze part of
heads nobody chose. With r = 1 (plain multi-head attention) this reduces to "freeze a head's K and
V with its Q", exactly like GPT-2. ``o_proj.bias`` and per-head-dim norms shared by all heads
(Qwen3's ``q_norm``/``k_norm``) belong to no single head and stay trainable.

Axis letters: B batch, L blocks (layers), H query heads, T tokens, E hidden size, d head size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
from torch import nn

Index = tuple  # a tuple of slices, usable as ``param[index]``
HeadSlice = tuple[str, nn.Parameter, Index]

EAGER_HINT = (
    'load the model with attn_implementation="eager", e.g. '
    'AutoModelForCausalLM.from_pretrained(name, attn_implementation="eager"), '
    'or call model.set_attn_implementation("eager") on a loaded model'
)


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel / Accelerate wrapper."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


def kv_heads_to_freeze(
    heads: Iterable[tuple[int, int]], n_heads: int, n_kv_heads: int
) -> set[tuple[int, int]]:
    """The GQA rule: the ``(block, kv_head)`` pairs whose query heads are *all* in ``heads``.

    KV head g serves query heads ``[g*r, (g+1)*r)`` with ``r = n_heads // n_kv_heads``
    (the layout of transformers' ``repeat_kv``).
    """
    if n_kv_heads <= 0 or n_heads % n_kv_heads != 0:
        raise ValueError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv_heads}")
    r = n_heads // n_kv_heads
    frozen = {(int(b), int(h)) for b, h in heads}
    blocks = {b for b, _ in frozen}
    return {
        (b, g)
        for b in sorted(blocks)
        for g in range(n_kv_heads)
        if all((b, h) in frozen for h in range(g * r, (g + 1) * r))
    }


class ModelAdapter:
    """What CCI and freezing need to know about one architecture family (see the module doc)."""

    family: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: nn.Module) -> None:
        self.model = _unwrap(model)
        self.config = self.model.config
        self._blocks = list(self._block_list())
        if len(self._blocks) != self.n_blocks:
            raise ValueError(
                f"{type(self.model).__name__}: config says {self.n_blocks} blocks, found {len(self._blocks)}"
            )
        names = {id(m): n for n, m in self.model.named_modules()}
        self._prefixes = [names[id(block)] for block in self._blocks]

    # -- sizes (from the config) ---------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        raise NotImplementedError

    @property
    def n_heads(self) -> int:
        raise NotImplementedError

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads

    @property
    def head_dim(self) -> int:
        raise NotImplementedError

    # -- structure ---------------------------------------------------------------------------
    def _block_list(self) -> Iterable[nn.Module]:
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        return list(self._blocks)

    def block_prefix(self, b: int) -> str:
        """Block b's module name inside the model, e.g. ``transformer.h.3``."""
        self._check_block(b)
        return self._prefixes[b]

    def block_parameters(self, b: int) -> list[tuple[str, nn.Parameter]]:
        """Exactly block b's parameters, with their full names in ``model.named_parameters()``."""
        prefix = self.block_prefix(b)
        return [(f"{prefix}.{n}", p) for n, p in self._blocks[b].named_parameters()]

    def head_slices(self, b: int, h: int) -> list[HeadSlice]:
        """The (name, parameter, index) slices owned by query head h of block b."""
        raise NotImplementedError

    def kv_head_slices(self, b: int, g: int) -> list[HeadSlice]:
        """The slices of KV head g of block b that are *not* already in ``head_slices`` (GQA)."""
        return []

    def frozen_head_slices(self, heads: Iterable[tuple[int, int]]) -> list[HeadSlice]:
        """All slices to freeze for a set of ``(block, head)`` pairs, the GQA rule applied."""
        heads = sorted({(int(b), int(h)) for b, h in heads})
        out: list[HeadSlice] = []
        for b, h in heads:
            out.extend(self.head_slices(b, h))
        for b, g in sorted(kv_heads_to_freeze(heads, self.n_heads, self.n_kv_heads)):
            out.extend(self.kv_head_slices(b, g))
        return out

    # -- attention -----------------------------------------------------------------------------
    def check_eager(self) -> None:
        impl = getattr(self.config, "_attn_implementation", None)
        if impl != "eager":
            raise ValueError(
                f"attention maps need the eager attention implementation, but this model uses "
                f"{impl!r}: {EAGER_HINT}"
            )

    @torch.no_grad()
    def attention_blocks(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Post-softmax attention of every block, one ``(B, H, T, T)`` tensor per block, in eval mode.

        Only the base transformer runs (``model.base_model``): the LM head and its ``(B, T, vocab)``
        logits — about 40 % of a GPT-2-small forward — are never read by CCI, and the attention
        is the same tensor either way. The model's training mode is restored afterwards.
        Tensors are moved to the model's device.
        """
        self.check_eager()
        model = self.model
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            out = model.base_model(
                input_ids=input_ids.to(device),
                attention_mask=None if attention_mask is None else attention_mask.to(device),
                output_attentions=True,
                use_cache=False,
            )
        finally:
            model.train(was_training)
        attentions = out.attentions
        if not attentions or len(attentions) != self.n_blocks:
            raise ValueError(f"the model returned no attention weights: {EAGER_HINT}")
        return tuple(attentions)

    def attention_maps(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`attention_blocks` stacked, ``(B, L, H, T, T)`` (a copy: CCI crops the blocks
        instead, which keeps one example's document rows and columns, not the batch twice)."""
        return torch.stack(self.attention_blocks(input_ids, attention_mask), dim=1)

    # -- helpers -------------------------------------------------------------------------------
    def _check_block(self, b: int) -> None:
        if not 0 <= b < self.n_blocks:
            raise IndexError(
                f"block {b} out of range: the model has {self.n_blocks} blocks (0..{self.n_blocks - 1})"
            )

    def _check_head(self, b: int, h: int) -> None:
        self._check_block(b)
        if not 0 <= h < self.n_heads:
            raise IndexError(f"head {h} out of range: the model has {self.n_heads} heads per block")

    def _named(self, b: int, local: str) -> tuple[str, nn.Parameter]:
        return f"{self._prefixes[b]}.{local}", self._blocks[b].get_parameter(local)


class GPT2Adapter(ModelAdapter):
    """GPT-2: ``transformer.h[b].attn.{c_attn, c_proj}`` (fused QKV ``Conv1D``)."""

    family = "gpt2"
    model_types = ("gpt2",)

    @property
    def n_blocks(self) -> int:
        return int(self.config.n_layer)

    @property
    def n_heads(self) -> int:
        return int(self.config.n_head)

    @property
    def head_dim(self) -> int:
        return int(self.config.n_embd) // self.n_heads

    def _block_list(self) -> Iterable[nn.Module]:
        return self.model.base_model.h

    def head_slices(self, b: int, h: int) -> list[HeadSlice]:
        self._check_head(b, h)
        E, d = int(self.config.n_embd), self.head_dim
        out: list[HeadSlice] = []
        name, w = self._named(b, "attn.c_attn.weight")  # (E, 3E): columns = [Q | K | V]
        for k in range(3):
            out.append((name, w, (slice(None), slice(k * E + h * d, k * E + (h + 1) * d))))
        name, bias = self._named(b, "attn.c_attn.bias")  # (3E,)
        for k in range(3):
            out.append((name, bias, (slice(k * E + h * d, k * E + (h + 1) * d),)))
        name, w = self._named(b, "attn.c_proj.weight")  # (E, E): rows read the merged heads
        out.append((name, w, (slice(h * d, (h + 1) * d), slice(None))))
        return out


class LlamaAdapter(ModelAdapter):
    """Llama family (Llama, SmolLM2, Mistral, Qwen2/3): ``model.layers[b].self_attn.{q,k,v,o}_proj``."""

    family = "llama"
    model_types = ("llama", "mistral", "qwen2", "qwen3")

    @property
    def n_blocks(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def n_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def n_kv_heads(self) -> int:
        return int(getattr(self.config, "num_key_value_heads", None) or self.n_heads)

    @property
    def head_dim(self) -> int:
        d = getattr(self.config, "head_dim", None)
        return int(d) if d else int(self.config.hidden_size) // self.n_heads

    def _block_list(self) -> Iterable[nn.Module]:
        return self.model.base_model.layers

    def _rows(self, b: int, proj: str, lo: int, hi: int) -> list[HeadSlice]:
        attn = self._blocks[b].self_attn
        out: list[HeadSlice] = []
        name, w = self._named(b, f"self_attn.{proj}.weight")  # (out, in): rows = outputs
        out.append((name, w, (slice(lo, hi), slice(None))))
        if getattr(attn, proj).bias is not None:
            name, bias = self._named(b, f"self_attn.{proj}.bias")
            out.append((name, bias, (slice(lo, hi),)))
        return out

    def head_slices(self, b: int, h: int) -> list[HeadSlice]:
        """q_proj rows and o_proj columns of query head h (K/V: see :meth:`kv_head_slices`)."""
        self._check_head(b, h)
        d = self.head_dim
        out = self._rows(b, "q_proj", h * d, (h + 1) * d)
        name, w = self._named(b, "self_attn.o_proj.weight")  # (E, H*d): columns read head h
        out.append((name, w, (slice(None), slice(h * d, (h + 1) * d))))
        return out

    def kv_head_slices(self, b: int, g: int) -> list[HeadSlice]:
        """k_proj and v_proj rows of KV head g (frozen only under the GQA rule)."""
        self._check_block(b)
        if not 0 <= g < self.n_kv_heads:
            raise IndexError(
                f"KV head {g} out of range: the model has {self.n_kv_heads} KV heads per block"
            )
        d = self.head_dim
        return self._rows(b, "k_proj", g * d, (g + 1) * d) + self._rows(
            b, "v_proj", g * d, (g + 1) * d
        )


ADAPTERS: tuple[type[ModelAdapter], ...] = (GPT2Adapter, LlamaAdapter)


def adapter_for(model: nn.Module) -> ModelAdapter:
    """The adapter for ``model``'s architecture (by ``config.model_type``); a clear error otherwise."""
    inner = _unwrap(model)
    model_type = getattr(getattr(inner, "config", None), "model_type", None)
    for cls in ADAPTERS:
        if model_type in cls.model_types:
            return cls(inner)
    supported = ", ".join(t for cls in ADAPTERS for t in cls.model_types)
    raise ValueError(
        f"no architecture adapter for model_type {model_type!r} ({type(inner).__name__}); "
        f"supported model types: {supported}"
    )
