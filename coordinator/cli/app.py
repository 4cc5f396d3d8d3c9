"""The `coord` Typer application: mounts every command module."""

from __future__ import annotations

import logging
import os
import sys

import typer

from coordinator import __version__
from coordinator.cli import adp as adp_cmd
from coordinator.cli import board as board_cmd
from coordinator.cli import console
from coordinator.cli import costs as costs_cmd
from coordinator.cli import doctor as doctor_cmd
from coordinator.cli import init as init_cmd
from coordinator.cli import mcp as mcp_cmd
from coordinator.cli import plans as plans_cmd
from coordinator.cli import review as review_cmd
from coordinator.cli import run as run_cmd
from coordinator.cli import serve as serve_cmd  # `coord serve` (the dashboard loads when it runs)
from coordinator.cli import status as status_cmd
from coordinator.cli import worker as worker_cmd
from coordinator.cli._common import CoordGroup, guard_commands
from coordinator.core.errors import CoordError
from coordinator.core.loading import skip_exit_collection

app = typer.Typer(name="coord", cls=CoordGroup, no_args_is_help=True, add_completion=False,
                  help="Coordinate a team of AI agents through a checkpointed, reviewable plan.")


def _version(value: bool) -> None:
    if value:
        console.info(f"coord {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit."),
          db: str = typer.Option("", "--db", metavar="URL", envvar="COORD_DATABASE_URL", show_envvar=True,
                                 help="Keep the workspace's state in this Postgres database (postgresql://…); "
                                      "accepted after any command too. Unset: SQLite files in .coord/.")) -> None:
    """coord: plans, boards, gates and resumable runs for agent teams."""


init_cmd.register(app)
run_cmd.register(app)
status_cmd.register(app)
plans_cmd.register(app)
costs_cmd.register(app)  # `coord costs`, `coord budget …`
review_cmd.register(app)
board_cmd.register(app)
doctor_cmd.register(app)
mcp_cmd.register(app)  # `coord mcp`
serve_cmd.register(app)  # `coord serve`: the web dashboard
worker_cmd.register(app)  # `coord worker`, `coord workers` (docs/workers.md)
app.add_typer(adp_cmd.app, name="adp", help="Agent Data Protocol tools.")
guard_commands(app)  # one error printer for every command: stderr, exit 1 or 2, no traceback


def main() -> None:
    """Console-script entry point: map coord errors to exit codes."""
    logging.basicConfig(level=os.environ.get("COORD_LOG_LEVEL", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        app(standalone_mode=True)
    except CoordError as e:
        console.error(str(e))
        sys.exit(e.exit_code)
    finally:
        skip_exit_collection()  # the command is done: no full collection pass at exit
