"""Shared CLI plumbing: workspace option and the one error printer every command goes through.

Errors go to stderr as one ``error: …`` line (or one line per problem) with a consistent exit
code: ``2`` usage or input errors (:class:`UsageError` and its kin), ``1`` a failed command or
run (any other :class:`CoordError`, or the system refusing a file operation). Expected errors
never print a traceback; a traceback means a bug.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from typer import BadParameter

try:  # typer 0.2x bundles its own click
    from typer._click.exceptions import ClickException
except ImportError:  # older typer runs on the click package
    from click.exceptions import ClickException  # type: ignore[no-redef,import-not-found,assignment,unused-ignore]
from typer.core import TyperGroup

from coordinator.cli import console
from coordinator.core.database import as_coord_error, use_url
from coordinator.core.errors import EXIT_FAILED, EXIT_USAGE, CoordError
from coordinator.core.read_only import is_read_only_error

T = TypeVar("T")

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace directory.",
                                            envvar="COORD_WORKSPACE", show_default="current directory")]



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
    except sqlite3.OperationalError as e:  # a database the system will not let coord write (or lock)
        what = "the workspace is read-only" if is_read_only_error(e) else "a database of the workspace refused"
        console.error(f"{what}: {e}")
        raise typer.Exit(EXIT_FAILED) from None
    except sqlite3.DatabaseError as e:  # one that no check named sooner: damaged
        console.error(f"a database of the workspace (under .coord/) is damaged: {e}; `coord status` names "
                      "the checkpoint database if it is that one")
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as e:  # a Postgres driver error (server gone mid-command): one line, no traceback
        mapped = as_coord_error(e)
        if mapped is None:
            raise
        console.error(str(mapped))
        raise typer.Exit(mapped.exit_code) from None


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


class CoordGroup(TyperGroup):
    """The root command group: the command line's own parse errors (unknown option, missing
    argument, a value out of an option's range) print as one ``error: …`` line like every other
    error, on stderr with exit code 2, instead of the parser's boxed message. ``--help`` is unchanged.
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        args = take_db_option(list(sys.argv[1:] if args is None else args))
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.Abort:
            _exit_with("aborted", EXIT_FAILED)
        except ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `coord` / `coord adp`: help already shown
                sys.exit(e.exit_code)
            _exit_with(parse_error_message(e), e.exit_code or EXIT_USAGE)
        sys.exit(rv if isinstance(rv, int) else 0)


def take_db_option(args: list[str]) -> list[str]:
    """``--db URL`` (or ``--db=URL``) anywhere on the command line, for any command: the state database
    for this process (as ``COORD_DATABASE_URL``); the arguments without it."""
    out: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            out += [arg, *rest]
            break
        if arg == "--db":
            url = next(rest, None)
            if url is None:
                _exit_with("option '--db' requires a URL (postgresql://…)", EXIT_USAGE)
            use_url(url)
        elif arg.startswith("--db="):
            use_url(arg.split("=", 1)[1])
        else:
            out.append(arg)
    return out


def _exit_with(message: str, code: int) -> NoReturn:
    console.error(message)
    sys.exit(code)


def parse_error_message(e: ClickException) -> str:
    """One line for a command-line parse error: what is wrong, the option, the bad value, where to look."""
    text = " ".join(e.format_message().split())
    cause = e.__cause__
    if isinstance(e, BadParameter) and isinstance(cause, ValidationError) and cause.errors():
        err = cause.errors()[0]
        hint = e.param.get_error_hint() if e.param is not None else None
        reason = " ".join(str(err["msg"]).split())
        reason = reason[:1].lower() + reason[1:]
        text = (f"invalid value {err['input']!r} for {hint}: {reason}" if hint
                else f"invalid value {err['input']!r}: {reason}")
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        text += f" (see: {ctx.command_path} --help)"
    return text


def plain_columns(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned plain columns that never truncate a cell (run ids must stay pasteable)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
