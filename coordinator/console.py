"""All user-facing terminal output goes through here."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    """A normal line of output."""
    out.print(message)


def status(message: str) -> None:
    """A dim progress line."""
    out.print(f"[dim]{message}[/dim]")


def success(message: str) -> None:
    out.print(f"[green]{message}[/green]")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}")


def error(message: str) -> None:
    """An error line on stderr (no exit)."""
    err.print(f"[red]error:[/red] {message}", markup=True)


def abort(message: str, code: int = 2) -> NoReturn:
    """Print an error and exit with ``code``."""
    error(message)
    raise typer.Exit(code)


def is_tty() -> bool:
    return sys.stdout.isatty()
