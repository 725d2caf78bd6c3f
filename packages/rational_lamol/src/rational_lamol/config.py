"""The experiment configuration: one pydantic model, validated once at the edge.

A run is described by a TOML file (``rational-lamol run --config FILE.toml``) that maps onto
:class:`ExperimentConfig`. Unknown keys are rejected everywhere (``extra="forbid"``) and every
error is reported as one :class:`~rationale_commons.errors.DataError` naming the file and the
field, before any model is loaded or trained. The resolved config is written to every run dir.

Defaults follow LAMOL (Sun et al., ICLR 2020; docs/algorithms.md §1): lr 6.25e-5, lm_lambda 0.25,
gamma 0.2, top-k 20, greedy decoding at test time.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rational_lamol.answers import check_answers
from rationale_commons.errors import DataError, validation_message
from rationale_commons.loaders import ColumnMapping
from rationale_commons.runtime import check_path_component

SYNTHETIC_PREFIX = "synthetic:"
BUILTIN_CONFIGS = ("default", "paper", "paper_smoke", "paper_cpu")
_UNKNOWN_KEY_HINT = "check the spelling; see docs/lamol.md for the keys"

#: TaskConfig.rationales values that name a source rather than a file
RATIONALE_KEYWORDS = ("human", "invrat")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ColumnsConfig(ColumnMapping):
    """Column names of a plain table: the loaders' own mapping, so the config accepts exactly the
    columns the loaders read (unknown keys rejected)."""


#: fresh models built from the sizes below, with a tokenizer trained on the tasks' text
SCRATCH_SOURCES = ("gpt2-scratch", "llama-scratch")


class ModelConfig(_Strict):
    """Which causal LM to train.

    ``source`` is ``"gpt2-scratch"`` (a fresh GPT-2 of the size below with a byte-level BPE
    tokenizer trained on the tasks' text: the offline default), ``"llama-scratch"`` (the same with
    a Llama block: rotary positions, RMSNorm, SwiGLU), a Hugging Face hub id, a local
    ``save_pretrained`` folder, or a ``.gguf`` file (or a folder plus ``gguf_file``).
    """

    source: str = "gpt2-scratch"
    gguf_file: str | None = None
    max_length: int = Field(128, ge=16, description="model window in tokens (QA/LM sequences fit it)")
    # gpt2-scratch and llama-scratch only
    n_layer: int = Field(2, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=8)
    vocab_size: int = Field(2000, ge=300, description="BPE vocabulary trained on the tasks' text")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    # pretrained models only
    eos_token: str | None = Field(
        None,
        description=(
            "the token that ends every QA and LM sequence, instead of the tokenizer's EOS: e.g. "
            "'<|endoftext|>' for a chat model whose EOS ('<|im_end|>') ends a chat turn after a sentence or two"
        ),
    )
    token_init: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "LAMOL tokens new to a pretrained vocabulary that start as the mean embedding of a text's pieces "
            "instead of transformers' mean resizing, e.g. {'__ans__' = ' Answer:'}"
        ),
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.is_scratch and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.is_scratch and (self.eos_token or self.token_init):
            raise ValueError("eos_token and token_init are for a pretrained model (a scratch model trains its own tokens)")
        if any(not text.strip() for text in self.token_init.values()):
            raise ValueError("token_init: every text must hold at least one non-space character")
        return self

    @property
    def is_scratch(self) -> bool:
        return self.source in SCRATCH_SOURCES


class TaskConfig(_Strict):
    """One task: where its data is and how its examples become QA text."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: str = Field(description="ERASER folder, table file/folder, datasets name, or 'synthetic:<name>'")
    columns: ColumnsConfig | None = None
    question: str | None = Field(
        None, description="fixed question for single-input tasks (default: 'What is the <name> of this text?')"
    )
    answers: dict[str, str] | None = Field(
        None, description="label → answer text (e.g. NEG = 'negative'); unset: every label is its own answer"
    )
    unlisted_labels: Literal["error", "label"] = Field(
        "error", description="a label missing from `answers`: an error, or ('label') answered with the label itself"
    )
    rationales: str | None = Field(
        None,
        description=(
            "rationales CCI reads for this task: 'human' (or unset) = the data's own; 'invrat' = train "
            "InvRat on the task and use its rationales; else an ERASER annotation JSONL whose evidences "
            "replace the data's"
        ),
    )
    invrat: dict[str, Any] | None = Field(
        None, description="rationales = 'invrat': InvRat settings for this task, over the experiment's [invrat]"
    )
    synthetic: dict[str, Any] | None = Field(
        None,
        description=(
            "data = 'synthetic:<name>': extra options of rationale_commons.synthetic.make_task, "
            "e.g. {pair_statements = 1, doc_words = [20, 40], polluted = true}"
        ),
    )
    context_words: int | None = Field(
        None, ge=8, description="cut every document to at most this many words before tokenizing (unset: whole "
        "documents, truncated from their end where they overflow the model window)"
    )
    context_anchor: Literal["start", "evidence"] = Field(
        "start",
        description=(
            "where a cut document's window starts: its first word ('start'), or a quarter of the window "
            "before its first human-rationale word ('evidence'; every split and method alike, documents "
            "without a rationale start at their first word)"
        ),
    )
    max_train: int | None = Field(None, ge=1, description="cap: a seeded random subset, in the data's order")
    max_val: int | None = Field(None, ge=1, description="cap on the val split (as max_train)")
    max_test: int | None = Field(None, ge=1, description="cap on the test split (as max_train)")
    epochs: int | None = Field(
        None, ge=1, description="epochs of the stage that learns this task alone (unset: [training] epochs); "
        "stages of several tasks (multitask) keep [training] epochs"
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        return check_path_component(name, what="task name")  # it names folders of the run dir

    @field_validator("answers")
    @classmethod
    def _answers_distinct(cls, answers: dict[str, str] | None) -> dict[str, str] | None:
        if answers is not None:
            check_answers(answers)
        return answers

    @property
    def is_synthetic(self) -> bool:
        return self.data.startswith(SYNTHETIC_PREFIX)

    def default_question(self) -> str:
        return self.question or f"What is the {self.name} of this text?"


class TrainingConfig(_Strict):
    """Optimisation, replay and decoding settings shared by every method of a run."""

    epochs: int = Field(9, ge=1, description="epochs per task (paper: 9)")
    lr: float = Field(6.25e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of the steps of linear warm-up")
    lr_floor: float = Field(0.0, ge=0.0, le=1.0,
                            description="the learning rate the linear decay ends at, as a share of the peak "
                                        "(0: decay to zero, as LAMOL; 1: constant after the warm-up)")
    weight_decay: float = Field(0.01, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0)
    lm_lambda: float = Field(0.25, ge=0.0, description="weight of the LM loss: L = L_QA + lm_lambda L_LM")
    gamma: float = Field(0.2, ge=0.0, description="pseudo-samples per task = ceil(gamma * |train_t|)")
    gen_token: Literal["shared", "per_task"] = "shared"
    top_k: int = Field(20, ge=0, description="top-k sampling of pseudo-samples (0: full distribution)")
    temperature: float = Field(1.0, gt=0)
    ans_weight: float = Field(1.0, gt=0, description="loss weight of the first answer token (reference: 5)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    eval_batch_size: int = Field(32, ge=1)
    gen_batch_size: int = Field(32, ge=1)
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")


class ExperimentConfig(_Strict):
    """A whole comparison: one model, ordered tasks, methods × seeds × task orders."""

    name: str = Field("experiment", description="names the default run dir runs/<name>-<time>")
    model: ModelConfig = Field(default_factory=ModelConfig)
    tasks: list[TaskConfig] = Field(min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["finetune", "lamol", "multitask"], min_length=1)
    orders: list[list[str]] | Literal["all"] | None = Field(
        None, description="task orders to run (default: the order of [[tasks]]; 'all': every permutation)"
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    method_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-method options, e.g. [method_options.rational-block]"
    )
    data_seed: int = Field(0, description="seed of synthetic data and of val splits carved from train")
    invrat: dict[str, Any] = Field(
        default_factory=dict,
        description="InvRat settings (invrat.InvRatConfig keys, flat or in sections) for tasks with rationales = 'invrat'",
    )

    @field_validator("invrat")
    @classmethod
    def _invrat_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        from invrat import InvRatConfig

        InvRatConfig.model_validate(value)  # unknown keys and bad values fail here, before training
        return value

    @model_validator(mode="after")
    def _task_invrat_settings(self) -> ExperimentConfig:
        from invrat import InvRatConfig, merge_settings

        for task in self.tasks:
            if task.invrat:
                try:
                    InvRatConfig.model_validate(merge_settings(self.invrat, task.invrat))
                except ValidationError as exc:
                    raise ValueError(f"tasks.{task.name}.invrat: {validation_message(exc, unknown_key_hint=_UNKNOWN_KEY_HINT)}") from None
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        return check_path_component(name, what="experiment name")

    @field_validator("methods")
    @classmethod
    def _unique_methods(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods listed twice: {methods}")
        return methods

    @model_validator(mode="after")
    def _check_tasks_and_orders(self) -> ExperimentConfig:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        if isinstance(self.orders, list):
            for order in self.orders:
                if sorted(order) != sorted(names):
                    raise ValueError(f"order {order} is not a permutation of the tasks {names}")
        return self

    def resolved_orders(self) -> list[list[str]]:
        names = [t.name for t in self.tasks]
        if self.orders is None:
            return [names]
        if self.orders == "all":
            return [list(p) for p in itertools.permutations(names)]
        return [list(o) for o in self.orders]

    def task(self, name: str) -> TaskConfig:
        return next(t for t in self.tasks if t.name == name)


def parse_config(data: dict[str, Any], *, source: str | Path = "<config>") -> ExperimentConfig:
    """Validate a config mapping; every problem becomes one :class:`DataError` naming the field."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise DataError(validation_message(exc, unknown_key_hint=_UNKNOWN_KEY_HINT), path=source) from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a TOML config file (or a built-in name: ``default``, ``paper``)."""
    path = Path(path)
    if not path.exists() and str(path) in BUILTIN_CONFIGS:
        path = builtin_config_path(str(path))
    if not path.is_file():
        raise DataError("config file not found", path=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"invalid TOML ({exc})", path=path) from None
    config = parse_config(data, source=path)
    return _resolve_relative_paths(config, path.parent)


def builtin_config_path(name: str = "default") -> Path:
    return Path(__file__).parent / "configs" / f"{name}.toml"


def _resolve_relative_paths(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    """Data paths in a config file are relative to the file (when that path exists)."""
    for task in config.tasks:
        for attr in ("data", "rationales"):
            value = getattr(task, attr)
            if value is None or value.startswith(SYNTHETIC_PREFIX) or value in RATIONALE_KEYWORDS \
                    or Path(value).is_absolute():
                continue
            candidate = base / value
            if candidate.exists():
                setattr(task, attr, str(candidate.resolve()))
    src = config.model.source
    if not config.model.is_scratch and not Path(src).is_absolute() and (base / src).exists():
        config.model.source = str((base / src).resolve())
    return config
