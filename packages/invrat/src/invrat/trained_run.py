"""A trained run dir read back: its config, vocabulary, labels and selected players.

Training (to resume) and ``rationalize`` both read run dirs through here, so rationalize needs
no training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from torch import nn

from invrat.config import InvRatConfig
from invrat.embeddings import initial_embeddings
from invrat.model import build_players, is_query_aware
from invrat.vocab import Vocab
from rationale_commons.errors import DataError, first_line, validation_message
from rationale_commons.runtime import load_safetensors, read_json

#: The files a run dir needs to be rationalized from.
RUN_FILES = ("config.json", "vocab.json", "labels.json", "model.safetensors")


def read_run_config(run_dir: Path) -> InvRatConfig:
    """The run's ``config.json`` (flat keys of older runs included); a bad one is a DataError naming it."""
    path = run_dir / "config.json"
    try:
        return InvRatConfig.model_validate(read_json(path))
    except ValidationError as exc:
        raise DataError(validation_message(exc), path=path) from None


@dataclass
class TrainedRun:
    """A run dir's config, vocabulary, labels and the selected players (in eval mode, on the CPU)."""

    config: InvRatConfig
    vocab: Vocab
    labels: list[str]
    players: nn.ModuleDict


def load_run(run_dir: Path) -> TrainedRun:
    """Read a run dir; anything missing or unreadable is a DataError naming it."""
    if not run_dir.is_dir():
        raise DataError("run dir not found", path=run_dir)
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise DataError(f"not an invrat run dir (missing {', '.join(missing)})", path=run_dir)
    try:
        config = read_run_config(run_dir)
        vocab = Vocab.load(run_dir / "vocab.json")
        labels: list[str] = read_json(run_dir / "labels.json")
    except DataError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise DataError(f"unreadable run dir: {exc}".splitlines()[0], path=run_dir) from None
    return TrainedRun(config, vocab, labels, _load_players(run_dir / "model.safetensors", config, vocab, len(labels)))


def _load_players(path: Path, config: InvRatConfig, vocab: Vocab, n_labels: int) -> nn.ModuleDict:
    state = load_safetensors(path)  # a DataError naming the file
    query_aware = is_query_aware(state)
    try:  # word vector size, whatever its source (a query-aware player reads one more feature)
        dim = state["g.encoder.forward_gru.weight_ih_l0"].shape[1] - int(query_aware)
        if config.players.predictor == "bag_of_words":  # one bias row per environment
            n_envs = state["fe.bias.weight"].shape[0]
        else:
            n_envs = state["fe.encoder.forward_gru.weight_ih_l0"].shape[1] - dim - int(query_aware)
    except KeyError as exc:
        raise DataError(f"not invrat players (no tensor {exc})", path=path) from None
    cfg = config.model_copy(update={"embedding_dim": dim})
    # a table's vectors are in the state; a frozen encoder is not saved and comes from its package
    words = initial_embeddings(cfg, vocab)[0] if cfg.players.embedding == "minilm" else None
    players = build_players(cfg, len(vocab), n_labels, n_envs, words, query_aware=query_aware)
    try:
        players.load_state_dict(state)
    except RuntimeError as exc:  # tensors of other shapes: a model.safetensors of another run
        raise DataError(f"does not match the run's config ({first_line(exc)})", path=path) from None
    return players.eval()
