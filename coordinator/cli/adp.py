"""``coord adp``: Agent Data Protocol tools (``validate FILE...``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from pipeline.adp.validate import AdpReport

app = typer.Typer(help="Agent Data Protocol (ADP) tools.", no_args_is_help=True)
_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False)


@app.callback()
def _group() -> None:
    """Agent Data Protocol (ADP) tools."""


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="ADP files: JSON arrays or JSONL.", show_default=False)],
    max_errors: Annotated[int, typer.Option("--max-errors", min=0,
                                            help="Show at most N errors per file (0 = all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Validate ADP trajectory files; exit 0 if all valid, 1 if any invalid, 2 if any unreadable."""
    # start-up: the ADP models load only when this command runs
    from pipeline.adp.validate import exit_code, validate_adp_files

    reports = validate_adp_files(files, max_errors=max_errors or None)
    if as_json:
        typer.echo(orjson.dumps([r.to_dict() for r in reports], option=orjson.OPT_INDENT_2).decode())
    else:
        for report in reports:
            _show(report)
        if len(reports) > 1:
            bad = sum(not r.ok for r in reports)
            _out.print(f"{len(reports)} files, {bad} with problems")
    raise typer.Exit(exit_code(reports))


def _show(report: AdpReport) -> None:
    name = escape(report.file)
    if report.read_error is not None:
        _err.print(f"[red]✗ unreadable[/red] {escape(report.read_error)}")
        return
    versions = ", ".join(f"{v}×{n}" for v, n in report.versions.items()) or "none"
    if report.ok:
        _out.print(f"[green]✓[/green] {name}: {report.trajectories} trajectories valid "
                   f"(schema_version {escape(versions)})")
    else:
        _out.print(f"[red]✗[/red] {name}: {report.invalid} of {report.trajectories} trajectories "
                   f"invalid, {report.error_count} errors (schema_version {escape(versions)})")
    for error in report.errors:
        where = escape(error.location())
        ident = f" ({escape(error.trajectory_id)})" if error.trajectory_id else ""
        _out.print(f"  {where}{ident} [bold]{escape(error.path or '(record)')}[/bold]: "
                   f"{escape(error.message)}")
    if hidden := report.error_count - len(report.errors):
        _out.print(f"  … {hidden} more errors not shown")
    for note, count in report.warnings.items():  # warnings go to stderr, like every command's
        _err.print(f"[yellow]warning:[/yellow] {name}: {escape(note)} ({count})")
