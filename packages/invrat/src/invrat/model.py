"""The three InvRat players (Chang et al. 2020, §3): generator g, predictors f_i and f_e.

Each player owns an embedding layer and a bidirectional GRU over word ids; :func:`build_players`
makes the three of a run (for training and for reading a trained run back alike).
Axis letters: B batch, T time (tokens), D embedding size, H hidden size, C labels, E environments.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from invrat.config import InvRatConfig
from invrat.encoder import ContextualWords
from invrat.losses import straight_through

WordFeatures = nn.Embedding | ContextualWords  # what a player reads words through


def make_embedding(vocab_size: int, dim: int, init: torch.Tensor | ContextualWords | None, *, freeze: bool) -> WordFeatures:
    """A player's word features: a table (random, or copied from ``init`` vectors) or the shared frozen encoder."""
    if isinstance(init, ContextualWords):
        return init
    emb = nn.Embedding(vocab_size, dim, padding_idx=0)
    if init is not None:
        emb.weight.data.copy_(init)
        emb.weight.requires_grad_(not freeze)
    return emb


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` steps, leaving the padding in place (an involution).

    x: (B, T, ...). Used instead of packed sequences: PyTorch's packed-GRU backward
    is ~10x slower on CPU, and this keeps padding out of the backward direction all the same.
    """
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    n = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    idx = idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class BiGRU(nn.Module):
    """A bidirectional GRU over padded batches whose outputs at real positions never see padding."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.input_size = input_dim
        self.forward_gru = nn.GRU(input_dim, hidden_dim, batch_first=True)
        self.backward_gru = nn.GRU(input_dim, hidden_dim, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        fwd, _ = self.forward_gru(x)  # (B, T, H): padding only follows real steps
        bwd, _ = self.backward_gru(reverse_within_length(x, lengths))  # (B, T, H)
        return torch.cat([fwd, reverse_within_length(bwd, lengths)], dim=-1)  # (B, T, 2H)


class Generator(nn.Module):
    """g: a selection logit per token; the caller turns it into a hard mask."""

    def __init__(self, embedding: WordFeatures, hidden_dim: int, dropout: float, alpha: float = 0.5) -> None:
        super().__init__()
        self.embedding = embedding
        self.drop = nn.Dropout(dropout)
        self.encoder = BiGRU(embedding.embedding_dim, hidden_dim)
        self.head = nn.Linear(2 * hidden_dim, 1)
        # Start near the target selection rate: from 50% the sparsity term drives every logit down at
        # once and Adam overshoots into "select nothing", where sigmoid'(logit) ~ 0 leaves no gradient.
        with torch.no_grad():
            self.head.bias.fill_(math.log(alpha / (1 - alpha)) if 0 < alpha < 1 else 0.0)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embedding(ids))  # (B, T, D)
        h = self.drop(self.encoder(x, lengths))  # (B, T, 2H)
        return self.head(h).squeeze(-1)  # (B, T) logits


class Predictor(nn.Module):
    """f_i (``n_envs == 0``) or f_e: predicts the label from the masked tokens.

    Unselected words' vectors are zeroed (and hidden from a contextual encoder); f_e concatenates
    the one-hot of the example's environment to every token embedding (any number of environments).
    The sequence is max-pooled over real positions.
    """

    def __init__(self, embedding: WordFeatures, hidden_dim: int, n_labels: int, n_envs: int, dropout: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.n_envs = n_envs
        self.drop = nn.Dropout(dropout)
        self.encoder = BiGRU(embedding.embedding_dim + n_envs, hidden_dim)
        self.head = nn.Linear(2 * hidden_dim, n_labels)

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        z: torch.Tensor,
        real_mask: torch.Tensor,
        envs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # the encoder must not read the unselected words at all; a table's vectors are zeroed after the lookup
        words = self.embedding(ids, z) if isinstance(self.embedding, ContextualWords) else self.embedding(ids)
        x = self.drop(words) * z.unsqueeze(-1).to(words.dtype)  # (B, T, D)
        if self.n_envs:
            if envs is None:
                raise ValueError("the environment-aware predictor needs envs")
            onehot = nn.functional.one_hot(envs, self.n_envs).to(x.dtype)  # (B, E)
            x = torch.cat([x, onehot.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)  # (B, T, D+E)
        h = self.drop(self.encoder(x, lengths))  # (B, T, 2H)
        h = h.masked_fill(real_mask.unsqueeze(-1) == 0, float("-inf"))
        pooled = h.max(dim=1).values  # (B, 2H)
        return self.head(pooled)  # (B, C)


def select(
    logits: torch.Tensor,
    doc_mask: torch.Tensor,
    *,
    train: bool,
    gumbel: bool,
    temperature: float,
    top_alpha: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard straight-through mask over document positions, and the selection probabilities.

    Forward: z = 1[sigmoid((logit + noise) / tau) > 0.5] on document positions, 0 elsewhere, or,
    with ``top_alpha``, the ``ceil(top_alpha * n)`` highest noisy logits of each document (a
    fixed budget: the generator learns a ranking and can neither collapse to an empty rationale
    nor spend its budget on filler); backward: the gradient of the soft value. Noise is logistic
    (the two-class Gumbel) while training, so the top-k is a sample without replacement.
    """
    probs = torch.sigmoid(logits)  # (B, T)
    if train and gumbel:
        u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
        noisy = logits + torch.log(u) - torch.log1p(-u)
        soft = torch.sigmoid(noisy / temperature)
    else:
        noisy, soft = logits, probs
    if top_alpha is None:
        hard = (soft > 0.5).to(soft.dtype)
    else:
        hard = top_fraction(noisy.detach(), doc_mask, top_alpha)
    z = straight_through(hard, soft) * doc_mask
    return z, probs * doc_mask


def top_fraction(logits: torch.Tensor, doc_mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """0/1 mask of the ``ceil(fraction * n)`` highest logits among each row's ``n`` document positions.

    logits, doc_mask: (B, T). Rows without document positions select nothing; ties go to the earlier
    position (stable sort).
    """
    n = doc_mask.sum(dim=1)  # (B,)
    k = torch.clamp(torch.ceil(fraction * n), min=1) * (n > 0)  # (B,)
    ranked = logits.float().masked_fill(doc_mask == 0, float("-inf"))
    order = ranked.argsort(dim=1, descending=True, stable=True)  # (B, T)
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ((ranks < k.unsqueeze(1)) & (doc_mask > 0)).to(logits.dtype)


def inference_rationale(
    logits: torch.Tensor, doc_mask: torch.Tensor, *, selection: str, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hard rationale at inference (no noise) and the selection probabilities.

    ``selection``: ``threshold`` (sigmoid > 0.5, the generator's own decision) or ``top_alpha``
    (the ``ceil(alpha * n)`` highest logits of each document, never empty). Dev evaluation and
    ``rationalize`` both read the rationale from here, so the model is selected on what is written.
    """
    z, probs = select(logits, doc_mask, train=False, gumbel=False, temperature=1.0)
    if selection == "top_alpha":
        z = top_fraction(logits, doc_mask, alpha)
    return z, probs


def predictor_input_mask(z: torch.Tensor, doc_mask: torch.Tensor, real_mask: torch.Tensor) -> torch.Tensor:
    """What the predictors see: the selected document tokens, plus the separator and query (always)."""
    return z + (real_mask - doc_mask)


def build_players(
    config: InvRatConfig, vocab_size: int, n_labels: int, n_envs: int, init: torch.Tensor | ContextualWords | None
) -> nn.ModuleDict:
    """g, f_i, f_e, each with its own embedding layer (as in the reference; a frozen encoder is shared)."""
    if isinstance(init, ContextualWords):
        dim = init.embedding_dim
    else:
        dim = init.shape[1] if init is not None else config.players.embedding_dim

    def emb() -> WordFeatures:
        return make_embedding(vocab_size, dim, init, freeze=config.players.freeze_embeddings)

    fi = Predictor(emb(), config.players.hidden_dim, n_labels, 0, config.players.dropout)
    players = nn.ModuleDict(
        {
            "g": Generator(fi.embedding if config.players.share_embeddings else emb(), config.players.hidden_dim, config.players.dropout, config.game.alpha),
            "fi": fi,
            "fe": Predictor(emb(), config.players.hidden_dim, n_labels, max(1, n_envs), config.players.dropout),
        }
    )
    if config.experimental.env_residual:  # a correction to f_i's logits that starts at none
        nn.init.zeros_(players["fe"].head.weight)
        nn.init.zeros_(players["fe"].head.bias)
    return players
