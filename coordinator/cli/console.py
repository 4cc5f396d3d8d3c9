"""All user-facing terminal output goes through here.

Messages are plain text unless ``markup=True``: task ids like ``finetune[qa]``
and plan paths like ``tasks[2].role`` must never be read as rich markup.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _text(message: str, markup: bool) -> str:
    return message if markup else escape(message)


def info(message: str, *, markup: bool = False) -> None:
    """A normal line of output."""
    out.print(_text(message, markup))


def status(message: str) -> None:
    """A dim progress line."""
    out.print(f"[dim]{escape(message)}[/dim]")


def success(message: str) -> None:
    """A line reporting that something worked."""
    out.print(f"[green]{escape(message)}[/green]")


def warn(message: str) -> None:
    """A warning on stderr."""
    err.print(f"[yellow]warning:[/yellow] {escape(message)}")


def error(message: str) -> None:
    """An error line on stderr (no exit)."""
    err.print(f"[red]error:[/red] {escape(message)}")


def detail(message: str, *, problem: bool) -> None:
    """An indented line under a heading: on stderr when it explains a problem, else on stdout."""
    (err if problem else out).print(f"  - {escape(message)}")


def abort(message: str, code: int = 2) -> NoReturn:
    """Print an error and exit with ``code``."""
    error(message)
    raise typer.Exit(code)


def is_tty() -> bool:
    """True when stdout is a terminal (live progress) rather than a pipe or file."""
    return sys.stdout.isatty()
