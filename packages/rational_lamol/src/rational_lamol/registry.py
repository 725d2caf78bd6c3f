"""The methods an experiment can name: the built-in ones, imported plainly, and plugins.

A plugin is a :class:`rational_lamol.methods.Method` subclass with a ``name``, registered with
:func:`register_method` (from the plugin's own module) or through an entry point of the group
``rational_lamol.methods`` (loaded the first time the registry is read).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from rational_lamol.controls import RandomBlockMethod, RandomHeadMethod
from rational_lamol.methods import FinetuneMethod, LamolMethod, Method, MultitaskMethod
from rational_lamol.rational import RationalBlockMethod, RationalHeadMethod
from rationale_commons.errors import DataError, validation_message

log = logging.getLogger("rational_lamol")

BUILT_IN: tuple[type[Method], ...] = (
    FinetuneMethod, LamolMethod, MultitaskMethod,
    RationalBlockMethod, RationalHeadMethod, RandomBlockMethod, RandomHeadMethod,
)
_registry: dict[str, type[Method]] = {cls.name: cls for cls in BUILT_IN}
_entry_points_loaded = False


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a :class:`Method` subclass available under its ``name``."""
    if cls.name in _registry and _registry[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} is already registered by {_registry[cls.name].__qualname__}")
    _registry[cls.name] = cls
    return cls


def unregister_method(name: str) -> None:
    _registry.pop(name, None)


def _methods() -> dict[str, type[Method]]:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group="rational_lamol.methods"):
            try:
                register_method(ep.load())
            except Exception as exc:  # a broken third-party plugin must not break the built-ins
                log.warning("could not load the method plugin %s: %s", ep.name, exc)
    return _registry


def available_methods() -> list[str]:
    return sorted(_methods())


def make_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """The method ``name`` with its options validated (a config error names the bad option)."""
    methods = _methods()
    if name not in methods:
        raise DataError(f"unknown method {name!r}; available: {', '.join(sorted(methods))}", field="methods")
    cls = methods[name]
    try:
        return cls(cls.Options.model_validate(options or {}))
    except ValidationError as exc:
        raise DataError(validation_message(exc), field=f"method_options.{name}") from None
    except ValueError as exc:
        raise DataError(str(exc), field=f"method_options.{name}") from None


def random_controls() -> dict[str, str]:
    """``{method: its random control}`` for the registered methods that have one."""
    return {cls.requires: name for name, cls in _methods().items() if cls.requires}


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
