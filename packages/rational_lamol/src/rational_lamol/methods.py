"""Lifelong-learning methods as small strategy objects, registered by name.

A method says how the model learns one stage of the task sequence (:meth:`Method.learn_task`);
the pipeline owns everything else (the order, evaluation, checkpoints, resume, results).
Built in (docs/algorithms.md §1):

- ``lamol``: the task's data plus pseudo-samples of earlier tasks, ``L = L_QA + lm_lambda L_LM``.
- ``finetune``: the same training without replay (sequential fine-tuning: the lower bound).
- ``multitask``: one model trained on the union of all tasks (the usual upper bound).

Another module adds a method with :func:`register_method`; a Rational-LAMOL style method wraps
``LamolMethod.learn_task``: probe on a copy (``ctx.with_model(copy)``), identify, freeze, then
learn again from ``ctx.model`` with the freezer as a callback. ``ctx.replay_sequences()`` is
computed once per stage from the model *before* training, so the probe and the final training
see the same pseudo-samples.

Modules listed in :data:`PLUGIN_MODULES` (and entry points of the group
``rational_lamol.methods``) are imported when the registry is first read, so their methods
can be named in a config.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rational_lamol.config import TrainingConfig
from rational_lamol.trainer import TrainingCallback, train_task
from rationale_commons.errors import DataError

if TYPE_CHECKING:
    from rational_lamol.pipeline import TaskContext

log = logging.getLogger(__name__)

PLUGIN_MODULES = ("rational_lamol.rational", "rational_lamol.controls")
_REGISTRY: dict[str, type[Method]] = {}
_plugins_loaded = False


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make a :class:`Method` subclass available under ``name``."""

    def wrap(cls: type[Method]) -> type[Method]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="rational_lamol.methods"):
            ep.load()
    except Exception as exc:  # a broken third-party plugin must not break the built-ins
        log.warning("could not load a method plugin: %s", exc)


def available_methods() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


def random_controls() -> dict[str, str]:
    """``{method: its random control}`` for the registered methods that have one."""
    _load_plugins()
    return {cls.requires: name for name, cls in _REGISTRY.items() if cls.requires}


def in_dependency_order(methods: dict[str, Method]) -> dict[str, Method]:
    """``methods`` reordered so that every method comes after the one it ``requires`` (otherwise in
    the given order); a required method that is missing is a config error."""
    for method in methods.values():
        if method.requires and method.requires not in methods:
            raise DataError(f"method {method.name!r} needs {method.requires!r} in the same experiment "
                            f"(it matches its freeze): add it to methods", field="methods")
    ordered: dict[str, Method] = {}
    for name, method in methods.items():
        if method.requires and method.requires not in ordered:
            ordered[method.requires] = methods[method.requires]
        ordered.setdefault(name, method)
    return ordered


def make_method(name: str, options: dict[str, Any] | None = None) -> Method:
    _load_plugins()
    if name not in _REGISTRY:
        raise DataError(f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}", field="methods")
    return _REGISTRY[name](dict(options or {}))


class Method:
    """Base strategy: how one stage is learned. Subclasses set the class flags below."""

    name: ClassVar[str] = "?"
    #: learn every task at once (one stage, one score-matrix row)
    multitask: ClassVar[bool] = False
    #: mix pseudo-samples of earlier tasks into each task's data
    replay: ClassVar[bool] = False
    #: task 1 is trained exactly as plain LAMOL trains it, so the run may reuse a cached task-1 model
    shares_task1: ClassVar[bool] = True
    #: a method that must run first for the same (order, seed): a random control reads its choices
    requires: ClassVar[str | None] = None
    #: option names (and defaults) this method accepts in [method_options.<name>]
    option_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            allowed = ", ".join(sorted(self.option_defaults)) or "none"
            raise DataError(f"unknown option(s) {unknown} for method {self.name!r} (allowed: {allowed})",
                            field=f"method_options.{self.name}")
        self.options = {**self.option_defaults, **options}

    def training_config(self, base: TrainingConfig) -> TrainingConfig:
        """The training settings this method uses (default: the run's)."""
        return base

    def learn_task(self, ctx: TaskContext, *, callbacks: Sequence[TrainingCallback] = ()):
        """Train ``ctx.model`` on this stage's data (plus replay when the method replays); return it."""
        seqs = list(ctx.train_sequences())
        if self.replay and ctx.index > 0:
            seqs += ctx.replay_sequences()
        stats = train_task(
            ctx.model, ctx.tokenizer, seqs, ctx.training, callbacks=callbacks, accelerator=ctx.accelerator,
            seed=ctx.train_seed, desc=f"{self.name} {'+'.join(ctx.task_names)}",
        )
        ctx.log_training(stats, n_sequences=len(seqs))
        return ctx.model

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options}


@register_method("lamol")
class LamolMethod(Method):
    """LAMOL: replay pseudo-samples generated by the model itself."""

    replay = True


@register_method("finetune")
class FinetuneMethod(Method):
    """Sequential fine-tuning with the same loss and budget, no replay (the lower bound)."""

    replay = False


@register_method("multitask")
class MultitaskMethod(Method):
    """All tasks' training data at once, same loss and epochs (the upper bound)."""

    multitask = True
    shares_task1 = False
