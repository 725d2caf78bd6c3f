"""Examples → CCI inputs (Rational LAMOL §3; docs/algorithms.md §2 "Inputs to CCI").

For each rationale-annotated example of the previous task the model reads the document ``c`` of
the QA text ``c q __ans__ a``, encoded exactly as training encodes it
(:func:`rational_lamol.tasks.encode_qa`: the context is cut from its end, the question and
answer never). CCI reads the attention among the document's tokens only, and in a causal model
those rows and columns do not depend on any later token, so ``q __ans__ a`` is not fed at all:
the same maps for a shorter forward. A token is in the rationale when any of its characters comes
from a rationale word (:func:`rationale_commons.alignment.word_mask_to_token_mask`).

An example whose rationale lies wholly outside the kept window gets an all-zero rationale
mask: :func:`rational_lamol.cci.identify_critical_components` counts it as skipped instead of
letting it vote. Examples without any rationale (``Example.rationale is None``) are left out
here; :func:`cci_items` returns their number for ``identify_critical_components``'s
``n_without_rationale``, which adds them to the skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from rational_lamol.cci import make_cci_batches
from rational_lamol.tasks import ANS_TOKEN, EncodedQA, TaskData, encode_qa
from rationale_commons.alignment import word_char_offsets, word_mask_to_token_mask
from rationale_commons.records import Example


@dataclass
class CCIItem:
    """One example as CCI reads it: the ids of its document ``c`` (the start of ``c q __ans__ a``),
    and per-position 0/1 masks."""

    id: str
    input_ids: list[int]
    doc_mask: list[int]  # 1 at the document's token positions
    rationale_mask: list[int]  # 1 at document tokens that overlap a rationale word
    truncated: bool

    def as_dict(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "doc_mask": self.doc_mask, "rationale_mask": self.rationale_mask}


def cci_item(example: Example, enc: EncodedQA) -> CCIItem:
    """One example with a word-level rationale as CCI reads it, from its QA encoding
    (:func:`rational_lamol.tasks.encode_qa` with the model window, so CCI sees the document as the
    model was trained on it)."""
    if example.rationale is None:
        raise ValueError(f"example {example.id!r} has no rationale")
    word_offsets = word_char_offsets(example.words)
    doc_tokens = word_mask_to_token_mask(example.rationale, word_offsets, enc.doc_offsets)  # (D,)
    n = enc.doc_end  # causal attention: nothing after the document changes its rows and columns
    doc_mask = [0] * n
    rationale_mask = [0] * n
    for k in range(enc.doc_start, enc.doc_end):
        doc_mask[k] = 1
        rationale_mask[k] = doc_tokens[k - enc.doc_start]
    return CCIItem(id=example.id, input_ids=list(enc.input_ids[:n]), doc_mask=doc_mask,
                   rationale_mask=rationale_mask, truncated=enc.truncated)


def cci_items(
    task: TaskData, examples: Sequence[Example], tokenizer, max_length: int
) -> tuple[list[CCIItem], int]:
    """The CCI items of a task's examples (its question and answer strings), and how many
    examples had no rationale at all (left out)."""
    ans_id = int(tokenizer.convert_tokens_to_ids(ANS_TOKEN))
    items, missing = [], 0
    for ex in examples:
        if ex.rationale is None:
            missing += 1
            continue
        enc = encode_qa(ex, tokenizer, max_length, question=task.question(), answer=task.answer(ex), ans_id=ans_id)
        items.append(cci_item(ex, enc))
    return items, missing


def cci_batches(
    items: Sequence[CCIItem], *, batch_size: int = 8, pad_token_id: int = 0, device: str | torch.device | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Right-padded batches (``input_ids``, ``attention_mask``, ``doc_mask``, ``rationale_mask``)
    for :func:`rational_lamol.cci.identify_critical_components`, moved to ``device``."""
    for batch in make_cci_batches([it.as_dict() for it in items], batch_size=batch_size, pad_token_id=pad_token_id):
        yield batch if device is None else {k: v.to(device) for k, v in batch.items()}
