"""Critical freezing (Rational LAMOL §3, docs/algorithms.md §2 "Freezing"): frozen means bit-identical.

The reference code failed three ways, each guarded against here (and tested):

- its block freeze put the block in an lr-0 optimizer group that the scheduler overwrote: here a
  frozen block's parameters get ``requires_grad=False`` (the trainer leaves them out of the
  optimizer), and are *also* restored from a snapshot after every optimizer step, so they stay
  identical even under an optimizer that was built with them;
- it matched names by substring (block 1 caught 10 and 11): parameters come from the block module
  itself through the architecture adapter;
- its head freeze only masked gradients, while AdamW's weight decay (and momentum from earlier
  steps) still moved the weights: here a gradient hook zeroes the head's slices *and* the slices
  are copied back from a snapshot after every optimizer step.

Which slices a head owns (GPT-2's fused ``c_attn`` columns, Llama's q/o rows/columns and the GQA
rule for shared K/V heads) is the adapter's business: see :mod:`rational_lamol.adapters`.

Use: ``freezer = Freezer(model, FreezeSpec(blocks=[3], heads=[(1, 0)]))`` and pass it to the
trainer as a callback (``on_train_start`` must run before the optimizer is built, so that frozen
parameters are left out of it); ``freezer.release()`` undoes everything.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from rational_lamol.adapters import ModelAdapter, _unwrap, adapter_for


class FreezeSpec(BaseModel):
    """The components to freeze: whole blocks and (block, head) pairs, 0-based."""

    model_config = ConfigDict(extra="forbid")

    blocks: list[int] = Field(default_factory=list, description="Transformer blocks frozen whole.")
    heads: list[tuple[int, int]] = Field(
        default_factory=list, description="(block, query head) pairs whose slices are frozen."
    )

    @field_validator("blocks")
    @classmethod
    def _blocks_sorted(cls, value: list[int]) -> list[int]:
        if any(b < 0 for b in value):
            raise ValueError(f"block indices must be >= 0, got {value}")
        return sorted(set(value))

    @field_validator("heads")
    @classmethod
    def _heads_sorted(cls, value: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if any(b < 0 or h < 0 for b, h in value):
            raise ValueError(f"(block, head) indices must be >= 0, got {value}")
        return sorted(set(value))

    def is_empty(self) -> bool:
        return not self.blocks and not self.heads

    def merged(self, other: FreezeSpec) -> FreezeSpec:
        """The union of two specs (accumulating freezes across task transitions)."""
        return FreezeSpec(blocks=self.blocks + other.blocks, heads=self.heads + other.heads)

    @classmethod
    def from_cci(cls, result: Any) -> FreezeSpec:
        """The spec freezing what a :class:`rational_lamol.cci.CCIResult` chose."""
        return cls(blocks=list(result.blocks), heads=list(result.heads))


class Freezer:
    """Freezes ``spec``'s components of ``model``; a trainer callback (``on_train_start``,
    ``on_after_optimizer_step``). Indices are checked against the model when constructed."""

    def __init__(self, model: nn.Module, spec: FreezeSpec) -> None:
        self.spec = spec
        self._resolve(model)
        self._active = False
        self._handles: list[Any] = []
        self._requires_grad: dict[str, bool] = {}
        self._block_snapshots: list[tuple[nn.Parameter, torch.Tensor]] = []
        self._slice_snapshots: list[tuple[nn.Parameter, tuple, torch.Tensor]] = []

    # -- resolution ----------------------------------------------------------------------------
    def _resolve(self, model: nn.Module) -> None:
        self.model = _unwrap(model)
        self.adapter: ModelAdapter = adapter_for(self.model)
        for b in self.spec.blocks:
            self.adapter._check_block(b)
        for b, h in self.spec.heads:
            self.adapter._check_head(b, h)
        # Whole parameters of frozen blocks.
        self.block_params: dict[str, nn.Parameter] = {}
        for b in self.spec.blocks:
            self.block_params.update(self.adapter.block_parameters(b))
        # Head slices of parameters that are not already frozen whole.
        self.slices: dict[str, tuple[nn.Parameter, list[tuple]]] = {}
        for name, param, index in self.adapter.frozen_head_slices(self.spec.heads):
            if name in self.block_params:
                continue
            self.slices.setdefault(name, (param, []))[1].append(index)
        self.masks: dict[str, torch.Tensor] = {}
        for name, (param, indices) in self.slices.items():
            mask = torch.zeros(param.shape, dtype=torch.bool, device=param.device)
            for index in indices:
                mask[index] = True
            self.masks[name] = mask

    # -- the callback protocol -----------------------------------------------------------------
    def on_train_start(self, model: nn.Module | None = None) -> None:
        """Apply the freeze (idempotent): requires_grad off, gradient hooks, snapshots."""
        if model is not None and _unwrap(model) is not self.model:
            self.release()
            self._resolve(model)
        if self._active:
            self._take_snapshots()  # the weights may have been loaded anew since
            return
        for name, param in self.block_params.items():
            self._requires_grad[name] = param.requires_grad
            param.requires_grad_(False)
        for name, (param, _) in self.slices.items():
            mask = self.masks[name].to(param.device)
            self.masks[name] = mask
            self._handles.append(
                param.register_hook(lambda grad, mask=mask: grad.masked_fill(mask, 0))
            )
        self._take_snapshots()
        self._active = True

    def on_after_optimizer_step(self, model: nn.Module | None = None) -> None:
        """Copy the frozen weights back (undoing weight decay and momentum on them)."""
        if self._active:
            self.restore()

    def apply(self) -> Freezer:
        self.on_train_start(self.model)
        return self

    # -- mechanics -----------------------------------------------------------------------------
    @torch.no_grad()
    def _take_snapshots(self) -> None:
        self._block_snapshots = [(p, p.detach().clone()) for p in self.block_params.values()]
        self._slice_snapshots = [
            (param, index, param.detach()[index].clone())
            for param, indices in self.slices.values()
            for index in indices
        ]

    @torch.no_grad()
    def restore(self) -> None:
        for param, saved in self._block_snapshots:
            param.copy_(saved)
        for param, index, saved in self._slice_snapshots:
            param[index] = saved

    def release(self) -> None:
        """Undo the freeze: remove hooks, give back requires_grad, drop the snapshots."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for name, param in self.block_params.items():
            if name in self._requires_grad:
                param.requires_grad_(self._requires_grad[name])
        self._requires_grad.clear()
        self._block_snapshots, self._slice_snapshots = [], []
        self._active = False

    # -- reporting -----------------------------------------------------------------------------
    def parameter_report(self, model: nn.Module | None = None) -> dict[str, Any]:
        """Element counts per block: ``{"blocks": [{"block", "trainable", "frozen"}], "outside_blocks",
        "total", "spec"}``. Frozen = ``requires_grad=False`` or inside a frozen head slice (counted
        exactly, overlaps once)."""
        model = self.model if model is None else _unwrap(model)
        adapter = self.adapter if model is self.model else adapter_for(model)
        masks = self.masks if (self._active and model is self.model) else {}
        seen: set[int] = set()

        def count(named: list[tuple[str, nn.Parameter]]) -> dict[str, int]:
            trainable = frozen = 0
            for name, p in named:
                if id(p) in seen:  # tied weights count once
                    continue
                seen.add(id(p))
                if not p.requires_grad:
                    frozen += p.numel()
                elif name in masks:
                    n = int(masks[name].sum())
                    frozen += n
                    trainable += p.numel() - n
                else:
                    trainable += p.numel()
            return {"trainable": trainable, "frozen": frozen}

        blocks = [
            {"block": b, **count(adapter.block_parameters(b))} for b in range(adapter.n_blocks)
        ]
        outside = count(list(model.named_parameters()))
        total = {
            key: sum(row[key] for row in blocks) + outside[key] for key in ("trainable", "frozen")
        }
        return {
            "blocks": blocks,
            "outside_blocks": outside,
            "total": total,
            "spec": self.spec.model_dump(),
        }
