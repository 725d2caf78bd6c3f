"""``invrat train``'s settings for a dataset nobody tuned for, and its checks of the kept model.

The library's defaults are the paper's game; the command fills every one of these keys the user's
config and options leave unset:

- ``selection`` and ``train_selection`` = ``top_alpha``: a fixed budget of words per document, so
  the generator learns a ranking and neither training nor ``rationalize`` can end with empty
  rationales (the paper's threshold kept a model selecting nothing on SciFact);
- ``gumbel`` = false: with a fixed budget the logistic noise makes the top-k close to a random
  draw unless the logits are far apart, and the predictors then train on near-random masks;
- ``alpha`` = :func:`alpha_for_length` of the median training document length;
- ``embedding`` = :func:`embedding_for` the amount of training text (unless ``embedding``,
  ``embedding_dim`` or ``glove_path`` is set): for real text frozen GloVe 6B 50d
  (``glove_package``) when the package is installed, else MiniLM's features computed once
  (``minilm_cached``), else scratch, with a one-line note; on tiny data (tests, toy sets) word
  vectors trained from scratch, which cost nothing to set up. GloVe replaced MiniLM on 2026-12-03
  by a design protocol on ERASER's dev splits (benchmarks/protocols/invrat_recipe_design.toml;
  docs/results/invrat_eraser.md): its rule chose GloVe, on margins within sampling noise, and GloVe
  costs no encoder pass;
- ``warmup_epochs`` = 4 and ``epochs`` = 13 on real text (the same bar): the predictors learn the
  label from whole documents for 4 epochs before the game's 9 (the library's 1 warm-up epoch left
  the Movies predictor at chance). Chosen on 2026-12-03 by design protocol 3 on ERASER's dev splits
  (benchmarks/protocols/invrat_recipe_design_warmup.toml).
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Sequence

from invrat.baselines import label_baselines
from invrat.config import InvRatConfig
from invrat.embeddings import glove_installed
from invrat.encoder import minilm_installed
from rationale_commons.records import Example

log = logging.getLogger("invrat")

#: (section, field) -> the value the recipe gives it when the user has not.
FIXED = {("game", "selection"): "top_alpha", ("experimental", "train_selection"): "top_alpha", ("game", "gumbel"): False}
#: Training words (within max_len) from which data counts as real text. Below it (tests, toy data)
#: reading pretrained vectors would take longer than the game takes to train.
REAL_TEXT_WORDS = 20_000
#: (game field) -> the recipe's value on real text: four warm-up epochs before the same 9 game epochs.
REAL_TEXT_GAME = {"warmup_epochs": 4, "epochs": 13}
#: The players' fields that choose their word features: the recipe leaves all three alone when one is set.
EMBEDDING_FIELDS = ("embedding", "embedding_dim", "glove_path")


def alpha_for_length(words: float) -> float:
    """The share of a document to select: ``words ** -0.4`` within [0.05, 0.4], two decimals.

    About 30% of a 20-word sentence (a few words), 10% of a 300-word passage and 7% of a
    700-word review: ERASER's human rationales cover 6.6% of BoolQ and 9.4% of Movies tokens."""
    return round(min(0.4, max(0.05, max(1.0, words) ** -0.4)), 2)


def embedding_for(train_words: int, *, minilm: bool, glove: bool) -> tuple[str, str | None]:
    """The word features for ``train_words`` words of training text, given which packages are
    installed, and a note when GloVe would have been chosen but is missing."""
    if train_words < REAL_TEXT_WORDS:
        return "scratch", None
    if glove:
        return "glove_package", None
    embedding, what = ("minilm_cached", "MiniLM's features") if minilm else ("scratch", "word vectors trained from scratch")
    return embedding, f"GloVe is not installed (pip install 'invrat[glove]'), so the players read {what}"


def _is_set(config: InvRatConfig, section: str, name: str) -> bool:
    return name in getattr(config, section).model_fields_set


def recipe_config(config: InvRatConfig, train: Sequence[Example]) -> InvRatConfig:
    """``config`` with the recipe's value in every recipe key it does not set."""
    update: dict[str, dict[str, object]] = {}
    for (section, name), value in FIXED.items():
        if not _is_set(config, section, name):
            update.setdefault(section, {})[name] = value
    lengths = [min(len(ex.words), config.data.max_len) for ex in train]
    train_words = sum(lengths)
    if not _is_set(config, "game", "alpha"):
        update.setdefault("game", {})["alpha"] = alpha_for_length(statistics.median(lengths))
    if train_words >= REAL_TEXT_WORDS:
        for name, value in REAL_TEXT_GAME.items():
            if not _is_set(config, "game", name):
                update.setdefault("game", {})[name] = value
    if not any(_is_set(config, "players", name) for name in EMBEDDING_FIELDS):
        embedding, note = embedding_for(train_words, minilm=minilm_installed(), glove=glove_installed())
        update.setdefault("players", {})["embedding"] = embedding
        if note:
            log.warning("invrat: note: %s", note)
    return config.model_copy(update=update) if update else config


#: ``predictor = "auto"`` takes the bag of words when a full-text TF-IDF logistic regression's dev
#: accuracy beats the majority class's by at least this much: the label is then in the words
#: themselves, which a linear predictor learns from few examples where a GRU over frozen vectors
#: does not (docs/results/invrat_eraser.md, "The label ceiling").
LINEAR_LABEL_MARGIN = 0.05


def resolve_predictor(config: InvRatConfig, train: Sequence[Example], dev: Sequence[Example]) -> InvRatConfig:
    """``config`` with ``players.predictor = "auto"`` decided on ``train`` and ``dev`` (labels only):
    ``bag_of_words`` when a TF-IDF logistic regression of the whole text scores at least
    :data:`LINEAR_LABEL_MARGIN` above the majority class on ``dev``, else ``bigru``. Other values
    are returned unchanged."""
    if config.players.predictor != "auto":
        return config
    scores = label_baselines(train, dev) if dev else {"tfidf_logreg_accuracy": 0.0, "majority_accuracy": 0.0}
    tfidf, majority = scores["tfidf_logreg_accuracy"], scores["majority_accuracy"]
    choice = "bag_of_words" if tfidf >= majority + LINEAR_LABEL_MARGIN else "bigru"  # no dev: 0 >= 0.05 is false
    log.warning("invrat: note: predictor auto -> %s (dev accuracy of a full-text TF-IDF logistic regression "
                "%.3f, majority class %.3f)", choice, tfidf, majority)
    return config.model_copy(update={"players": {"predictor": choice}})


def kept_model_warnings(selection: dict, dev: Sequence[Example]) -> list[str]:
    """Warnings about the kept (restart, epoch): it selects nothing, or predicts no better than the
    majority class of the dev set."""
    warnings = []
    if selection["dev_selection_rate"] <= 0.0:
        warnings.append("the kept model selects no word of the dev documents (selection rate 0); "
                        "use selection = \"top_alpha\"")
    majority = Counter(ex.label for ex in dev).most_common(1)[0][1] / len(dev) if dev else 0.0
    if dev and selection["dev_acc"] <= majority + 1e-9:
        warnings.append(f"the kept model's dev accuracy {selection['dev_acc']:.3f} is no better than always "
                        f"predicting the majority class ({majority:.3f})")
    return warnings
