"""Shared CLI plumbing: workspace option and error mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from coordinator import console
from coordinator.errors import CoordError

T = TypeVar("T")

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace directory.",
                                            envvar="COORD_WORKSPACE", show_default="current directory")]


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn coord errors into a message and their exit code."""
    try:
        yield
    except CoordError as e:
        console.error(str(e))
        raise typer.Exit(e.exit_code) from None


def call(fn: Callable[[], T]) -> T:
    """Run a service call under :func:`handle_errors`."""
    with handle_errors():
        return fn()
