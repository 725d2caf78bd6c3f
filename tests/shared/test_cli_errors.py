"""``one_line_errors``: expected failures of a command end as one line and exit 2 (130 on Ctrl-C)."""

from __future__ import annotations

import errno
import inspect

import pytest
from pydantic import BaseModel

from rationale_commons.cli_errors import one_line_errors
from rationale_commons.errors import DataError


class Strict(BaseModel):
    n: int


def failing(exc: BaseException):
    @one_line_errors("tool", interrupted="continue with --resume")
    def command(x: int, *, flag: bool = False) -> int:
        raise exc

    return command


@pytest.mark.parametrize(
    ("exc", "line", "code"),
    [
        (DataError("bad span", path="a.jsonl", line=3, field="evidences"), "tool: error: a.jsonl:3: evidences: bad span", 2),
        (OSError(errno.ENOSPC, "No space left on device", "out/x.json"), "tool: error: out/x.json: No space left on device", 2),
        (KeyboardInterrupt(), "tool: interrupted (continue with --resume)", 130),
    ],
    ids=["data", "os", "interrupt"],
)
def test_expected_failures_are_one_line(capsys, exc: BaseException, line: str, code: int) -> None:
    with pytest.raises(SystemExit) as stop:
        failing(exc)(1)
    assert stop.value.code == code
    assert capsys.readouterr().err.splitlines() == [line]


def test_a_validation_error_is_its_first_line(capsys) -> None:
    @one_line_errors("tool")
    def command() -> None:
        Strict.model_validate({"n": "x"})

    with pytest.raises(SystemExit):
        command()
    assert capsys.readouterr().err == "tool: error: 1 validation error for Strict\n"


def test_a_bug_keeps_its_traceback_and_a_command_its_signature() -> None:
    command = failing(ZeroDivisionError("bug"))
    with pytest.raises(ZeroDivisionError):
        command(1)
    assert list(inspect.signature(command).parameters) == ["x", "flag"]
