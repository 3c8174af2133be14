"""What every command uses to fail, print and read its input: an error as one line on stderr and a non-zero
exit (never a traceback), notes on stderr, JSON and API answers on stdout, ids, ages and statuses checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer

from qqueue.config import Settings, load_settings
from qqueue.errors import QQueueError

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def guard(fn: Callable[[], T]) -> T:
    """Run `fn`, turning qqueue's own errors into one clear line and exit code 1."""
    try:
        return fn()
    except QQueueError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise AssertionError("unreachable")


def note(message: str) -> None:
    """A line on stderr about what a command did beside its job; stdout stays the command's answer."""
    typer.secho(f"note: {message}", err=True)


def settings(**overrides: Any) -> Settings:
    return guard(lambda: load_settings(**overrides))


def print_json(value: Any) -> None:
    import msgspec

    typer.echo(msgspec.json.encode(value, enc_hook=str).decode())


def wire(value: Any) -> Any:
    """An API answer (a Struct) as JSON-ready builtins."""
    import msgspec

    return msgspec.to_builtins(value)


def as_row(task: Any) -> dict[str, Any]:
    """A task the API answered, shaped as the database's rows the terminal views print (`id`, not `task_id`)."""
    row = wire(task)
    row["id"] = row["task_id"]
    return row


def parse_id(text: str) -> Any:
    """A task's (or job's) id as the UUID it must be."""
    import uuid

    try:
        return uuid.UUID(text)
    except ValueError:
        fail(f"{text!r} is not a task id (a UUID)")


def check_statuses(given: list[str] | None, known: list[str]) -> None:
    for value in given or []:
        if value not in known:
            fail(f"unknown status {value!r}; use one of {', '.join(known)}")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """'90' (seconds), '15m', '12h', '7d' or '2w' as seconds; raises ConfigError otherwise."""
    from qqueue.errors import ConfigError

    value, unit = (text[:-1], text[-1]) if text and text[-1] in _AGE_UNITS else (text, "s")
    try:
        seconds = float(value) * _AGE_UNITS[unit]
    except ValueError:
        raise ConfigError(f"cannot read age {text!r}; use e.g. 3600, 30m, 12h or 7d") from None
    if seconds < 0:
        raise ConfigError("an age cannot be negative")
    return seconds
