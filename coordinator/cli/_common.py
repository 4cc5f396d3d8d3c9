"""Shared CLI plumbing: workspace option and the one error printer every command goes through.

Errors go to stderr as one ``error: …`` line (or one line per problem) with a consistent exit
code: ``2`` usage or input errors (:class:`UsageError` and its kin), ``1`` a failed command or
run (any other :class:`CoordError`, or the system refusing a file operation). Expected errors
never print a traceback; a traceback means a bug.
"""

from __future__ import annotations

import functools
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


EXIT_FAILED = 1


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn coord errors (and the system refusing a file operation) into a message and their exit code."""
    try:
        yield
    except CoordError as e:
        console.error(str(e))
        raise typer.Exit(e.exit_code) from None
    except OSError as e:  # disk full, permission denied, …: the message names the file
        console.error(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
        raise typer.Exit(EXIT_FAILED) from None


def guard_commands(app: typer.Typer) -> None:
    """Run every command of ``app`` and of its sub-groups under :func:`handle_errors`."""
    for info in app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_coord_guarded", False):
            info.callback = _guarded(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            guard_commands(group.typer_instance)


def _guarded(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def run(*args: object, **kwargs: object) -> T:
        with handle_errors():
            return fn(*args, **kwargs)

    run._coord_guarded = True  # type: ignore[attr-defined]
    return run


def call(fn: Callable[[], T]) -> T:
    """Run a service call under :func:`handle_errors`."""
    with handle_errors():
        return fn()
