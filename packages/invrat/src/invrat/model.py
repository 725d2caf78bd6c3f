"""The three InvRat players (Chang et al. 2020, §3): generator g, predictors f_i and f_e.

Each player owns an embedding layer and a bidirectional GRU over word ids; :func:`build_players`
makes the three of a run (for training and for reading a trained run back alike).
Axis letters: B batch, T time (tokens), D embedding size, H hidden size, C labels, E environments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from invrat.config import InvRatConfig
from invrat.encoder import ContextualWords
from invrat.losses import straight_through
from invrat.vocab import SEP_ID

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


def query_matches(ids: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 1.0 where a word also occurs in its example's query (exact id match, specials excluded).

    The exact-match feature of DrQA (Chen et al. 2017): on claim and question data the evidence
    shares words with the query, and a BiGRU cannot find shared words across the separator by itself.
    """
    query_ids = ids.masked_fill(query_mask == 0, -1)  # (B, T): -1 off the query
    shared = (ids.unsqueeze(2) == query_ids.unsqueeze(1)).any(dim=2)  # (B, T)
    return (shared & (ids > SEP_ID) & (query_mask == 0)).to(torch.float32)


def with_query_matches(x: torch.Tensor, ids: torch.Tensor, query_mask: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, T, D) with the exact-match flag as one more feature, zeroed where ``keep`` (B, T) is 0."""
    flag = query_matches(ids, query_mask) if keep is None else query_matches(ids, query_mask) * keep
    return torch.cat([x, flag.unsqueeze(-1).to(x.dtype)], dim=-1)


class QueryAttention(nn.Module):
    """Every position attends to the query's states: [h, c, h * c] with c the attended query summary
    (BiDAF's context-to-query attention, Seo et al. 2017), projected back to the states' size."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(dim, dim, bias=False)
        self.fuse = nn.Linear(3 * dim, dim)

    def forward(self, h: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        scores = self.key(h) @ h.transpose(1, 2)  # (B, T, T): position t against query position j
        scores = scores.masked_fill(query_mask.unsqueeze(1) == 0, float("-inf"))
        weights = torch.nan_to_num(scores.softmax(dim=-1))  # rows of an example without a query are all -inf: 0
        c = weights @ h  # (B, T, 2H)
        return torch.relu(self.fuse(torch.cat([h, c, h * c], dim=-1)))


class Generator(nn.Module):
    """g: a selection logit per token; the caller turns it into a hard mask.

    ``query_aware`` (pair data): each word also reads whether it occurs in the query, and its state
    attends to the query's states, so the same document scores differently under different queries.
    ``embedding`` None: the generator reads precomputed word features of size ``feature_dim`` instead
    (``embedding = "minilm_cached"``), given to every call.
    """

    def __init__(
        self, embedding: WordFeatures | None, hidden_dim: int, dropout: float, alpha: float = 0.5, *,
        query_aware: bool = False, feature_dim: int = 0,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.drop = nn.Dropout(dropout)
        dim = feature_dim if embedding is None else embedding.embedding_dim
        self.encoder = BiGRU(dim + int(query_aware), hidden_dim)
        self.head = nn.Linear(2 * hidden_dim, 1)
        # Start near the target selection rate: from 50% the sparsity term drives every logit down at
        # once and Adam overshoots into "select nothing", where sigmoid'(logit) ~ 0 leaves no gradient.
        with torch.no_grad():
            self.head.bias.fill_(math.log(alpha / (1 - alpha)) if 0 < alpha < 1 else 0.0)
        self.query_attention = QueryAttention(2 * hidden_dim) if query_aware else None

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor, query_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``query_mask`` (B, T): 1 on the separator and query positions (needed when query-aware);
        ``features`` (B, T, D): the precomputed word features (needed without an embedding)."""
        if self.embedding is None and features is None:
            raise ValueError("this generator reads precomputed word features (embedding = 'minilm_cached'); none were given")
        x = self.drop(self.embedding(ids) if self.embedding is not None else features)  # (B, T, D)
        if self.query_attention is not None:
            if query_mask is None:
                raise ValueError("a query-aware generator needs the query positions")
            x = with_query_matches(x, ids, query_mask)  # (B, T, D+1)
        h = self.drop(self.encoder(x, lengths))  # (B, T, 2H)
        if self.query_attention is not None:
            h = self.drop(self.query_attention(h, query_mask))
        return self.head(h).squeeze(-1)  # (B, T) logits


class Predictor(nn.Module):
    """f_i (``n_envs == 0``) or f_e: predicts the label from the masked tokens.

    Unselected words' vectors are zeroed (and hidden from a contextual encoder); f_e concatenates
    the one-hot of the example's environment to every token embedding (any number of environments).
    ``query_aware``: as the generator, the exact-match flag (of selected words) and attention to the
    always-visible query. The sequence is max-pooled over real positions.
    """

    def __init__(
        self, embedding: WordFeatures, hidden_dim: int, n_labels: int, n_envs: int, dropout: float, *, query_aware: bool = False
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.n_envs = n_envs
        self.drop = nn.Dropout(dropout)
        self.encoder = BiGRU(embedding.embedding_dim + int(query_aware) + n_envs, hidden_dim)
        self.head = nn.Linear(2 * hidden_dim, n_labels)
        self.query_attention = QueryAttention(2 * hidden_dim) if query_aware else None

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        z: torch.Tensor,
        real_mask: torch.Tensor,
        envs: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # the encoder must not read the unselected words at all; a table's vectors are zeroed after the lookup
        words = self.embedding(ids, z) if isinstance(self.embedding, ContextualWords) else self.embedding(ids)
        x = self.drop(words) * z.unsqueeze(-1).to(words.dtype)  # (B, T, D)
        if self.query_attention is not None:
            if query_mask is None:
                raise ValueError("a query-aware predictor needs the query positions")
            x = with_query_matches(x, ids, query_mask, keep=z)  # (B, T, D+1)
        if self.n_envs:
            if envs is None:
                raise ValueError("the environment-aware predictor needs envs")
            onehot = nn.functional.one_hot(envs, self.n_envs).to(x.dtype)  # (B, E)
            x = torch.cat([x, onehot.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)  # (B, T, D+E)
        h = self.drop(self.encoder(x, lengths))  # (B, T, 2H)
        if self.query_attention is not None:
            h = self.drop(self.query_attention(h, query_mask))
        h = h.masked_fill(real_mask.unsqueeze(-1) == 0, float("-inf"))
        pooled = h.max(dim=1).values  # (B, 2H)
        return self.head(pooled)  # (B, C)


class BagOfWords(nn.Module):
    """f_i (``n_envs == 0``) or f_e as a linear model of the words shown (``players.predictor =
    "bag_of_words"``): a learned weight per (word, label), summed over the selected words and the
    always-visible query; f_e adds a weight per (environment, word, label) and a bias per
    environment. A logistic regression on counts learns a label in a few epochs where a GRU over
    frozen vectors needs many, and the generator's straight-through gradient for a word is that
    word's weight: it is pushed toward the words that carry the label, and cannot pass the label
    through where, or how many, words are selected (a sum has no order; the budget fixes the count).
    Not in the paper, whose predictors are RNNs.
    """

    def __init__(self, vocab_size: int, n_labels: int, n_envs: int) -> None:
        super().__init__()
        self.vocab_size, self.n_envs = vocab_size, n_envs
        self.weights = nn.Embedding(vocab_size, n_labels)
        self.env_weights = nn.Embedding(vocab_size * n_envs, n_labels) if n_envs else None
        self.bias = nn.Embedding(max(1, n_envs), n_labels)  # per environment (f_i: one row)
        for table in (self.weights, self.env_weights, self.bias):
            if table is not None:
                nn.init.zeros_(table.weight)

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        z: torch.Tensor,
        real_mask: torch.Tensor,
        envs: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        w = self.weights(ids)  # (B, T, C)
        env = torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
        if self.env_weights is not None:
            if envs is None:
                raise ValueError("the environment-aware predictor needs envs")
            env = envs
            w = w + self.env_weights(envs.unsqueeze(1) * self.vocab_size + ids)
        shown = (z * real_mask).unsqueeze(-1).to(w.dtype)  # (B, T, 1)
        return (w * shown).sum(dim=1) + self.bias(env)  # (B, C)


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


def is_query_aware(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a players' state dict was saved by query-aware players (those of older runs never are)."""
    return any(key.startswith("g.query_attention.") for key in state)


def build_players(
    config: InvRatConfig, vocab_size: int, n_labels: int, n_envs: int, init: torch.Tensor | ContextualWords | None,
    *, query_aware: bool = False,
) -> nn.ModuleDict:
    """g, f_i, f_e, each with its own embedding layer (as in the reference; a frozen encoder is shared;
    with ``minilm_cached`` the generator reads the batch's precomputed features instead, and ``init``
    is the predictors' table). ``query_aware``: every player reads the query (pair data with
    ``players.query_attention``)."""
    if isinstance(init, ContextualWords):
        dim = init.embedding_dim
    else:
        dim = init.shape[1] if init is not None else config.players.embedding_dim

    def emb() -> WordFeatures:
        return make_embedding(vocab_size, dim, init, freeze=config.players.freeze_embeddings)

    def predictor(n_envs: int) -> nn.Module:
        if config.players.predictor == "bag_of_words":
            return BagOfWords(vocab_size, n_labels, n_envs)
        return Predictor(emb(), config.players.hidden_dim, n_labels, n_envs, config.players.dropout, query_aware=query_aware)

    fi = predictor(0)
    if config.players.embedding == "minilm_cached":
        g_embedding = None
    elif isinstance(fi, Predictor) and config.players.share_embeddings:
        g_embedding = fi.embedding
    else:  # not shared, or f_i has no word vectors to share (bag of words)
        g_embedding = emb()
    players = nn.ModuleDict(
        {
            "g": Generator(g_embedding, config.players.hidden_dim, config.players.dropout, config.game.alpha,
                           query_aware=query_aware, feature_dim=dim),
            "fi": fi,
            "fe": predictor(max(1, n_envs)),
        }
    )
    if config.experimental.env_residual and isinstance(players["fe"], Predictor):  # a correction to f_i's logits that starts at none
        nn.init.zeros_(players["fe"].head.weight)
        nn.init.zeros_(players["fe"].head.bias)
    return players
