"""Errors raised by pipeline steps, one root split by fault."""

from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """Root of every error a pipeline step raises on purpose."""


class InputError(PipelineError):
    """The step's input is unusable: missing file, wrong format, nothing to process."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = ""
        if self.path:
            where = self.path
            if line is not None:
                where += f":{line}"
            if field:
                where += f" → {field}"
            where += ": "
        super().__init__(where + message)


class ParameterError(PipelineError):
    """A step was called with parameters that cannot work."""


class WorkspaceEscapeError(ParameterError):
    """A path parameter points outside the workspace."""
