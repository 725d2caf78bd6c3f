"""One error handler for every command of the project's command lines.

Expected failures end as one line on stderr and exit code 2, never a traceback: bad input
(:class:`~rationale_commons.errors.DataError`, a pydantic ``ValidationError``) as
``<prog>: error: <its first line>``, an OS error (disk full, permission denied, a folder where a
file goes, ...) as ``<prog>: error: <file>: <reason>``. Ctrl-C ends as ``<prog>: interrupted``
(plus a hint on how to continue) and exit code 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import NoReturn, ParamSpec, TypeVar

from pydantic import ValidationError

from rationale_commons.errors import DataError, first_line, os_error_line

P = ParamSpec("P")
R = TypeVar("R")

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def _exit(prog: str, line: str, code: int) -> NoReturn:
    print(f"{prog}: {line}", file=sys.stderr)
    raise SystemExit(code) from None


def one_line_errors(prog: str, *, interrupted: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator for a command function of the command line ``prog``; ``interrupted`` is the
    hint printed after Ctrl-C (e.g. how a killed run continues). The command keeps its signature,
    so argument parsers that read it (typer) see the same options."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @wraps(command)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except (DataError, ValidationError) as exc:
                _exit(prog, f"error: {first_line(exc)}", EXIT_ERROR)
            except OSError as exc:
                _exit(prog, f"error: {os_error_line(exc)}", EXIT_ERROR)
            except KeyboardInterrupt:
                _exit(prog, "interrupted" + (f" ({interrupted})" if interrupted else ""), EXIT_INTERRUPTED)

        return wrapper

    return decorate
