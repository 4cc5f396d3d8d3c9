"""coord's exception hierarchy: one root, split by whose fault it is.

===================  ====  ==========================================================
class                exit  fault
===================  ====  ==========================================================
``UsageError``       2     the user asked for something impossible; ``ConfigError`` /
                           ``PlanError`` carry ``file:line → path``
``InputError``       2     data a task read is unusable; carries ``file:line → field``
``ProviderError``    1     an LLM provider refused or stayed unreachable
``TaskError``        1     the worker doing a task (a step, a command, an agent) failed
``LimitError``       1     a limit was hit (``BudgetExceeded``)
``InternalError``    1     a bug in coord or a broken installation (template, git)
===================  ====  ==========================================================

Every command exits 0 when done, 1 when something failed, 2 on a usage or input
error and 3 when the run waits for a person (:data:`EXIT_WAITING`).
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
"""Exit codes, the same for every command: done · failed · usage or input error · waiting on a person."""


class CoordError(Exception):
    """Root of every error coord raises on purpose."""

    exit_code = EXIT_FAILED


class UsageError(CoordError):
    """The user asked for something that cannot be done (bad argument, missing run)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A plan or workspace configuration file is invalid; carries its location."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None,
                 line: int | None = None) -> None:
        self.file = file
        self.path = path
        self.line = line
        self.message = message
        super().__init__(self.describe())

    def describe(self) -> str:
        """`file:line → path: message`, leaving out what is unknown."""
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.path:
            where += f" → {self.path}" if where else self.path
        return f"{where}: {self.message}" if where else self.message


class PlanError(ConfigError):
    """A plan file is invalid."""


class PlanErrors(PlanError):
    """Several plan problems found at once; each is a :class:`PlanError`."""

    def __init__(self, errors: list[PlanError]) -> None:
        self.errors = errors
        CoordError.__init__(self, "\n".join(e.describe() for e in errors))
        self.file = errors[0].file if errors else None
        self.path = None
        self.line = None
        self.message = str(self)

    def describe(self) -> str:
        """All problems, one per line."""
        return "\n".join(e.describe() for e in self.errors)


class UsageErrors(UsageError):
    """Several problems with what the user asked, found at once (the plan, ``--set``, ``--budget``, coord.yaml)."""

    def __init__(self, errors: list[UsageError]) -> None:
        self.errors: list[UsageError] = [e for err in errors for e in _each(err)]
        super().__init__("\n".join(_text(e) for e in self.errors))

    @classmethod
    def raise_if_any(cls, errors: list[UsageError]) -> None:
        """Raise the one error, or all of them together (plan errors alone stay :class:`PlanErrors`)."""
        if len(errors) == 1:
            raise errors[0]
        plan_errors = [e for err in errors for e in _each(err) if isinstance(e, PlanError)]
        if errors and len(plan_errors) == sum(len(_each(err)) for err in errors):
            raise PlanErrors(plan_errors)
        if errors:
            raise cls(errors)


def _each(error: UsageError) -> list[UsageError]:
    """The single problems in ``error``."""
    if isinstance(error, UsageErrors):
        return list(error.errors)
    if isinstance(error, PlanErrors):
        return list(error.errors)
    return [error]


def _text(error: UsageError) -> str:
    return error.describe() if isinstance(error, ConfigError) else str(error)


class WorkspaceBusyError(UsageError):
    """Another coord process holds the workspace lock."""

    def __init__(self, message: str, *, holder: str = "", run_id: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder
        """What the lock file says about its holder (``pid 123 run <id>``)."""
        self.run_id = run_id
        """The run the holder is executing, when it is a run."""


class ParameterError(UsageError):
    """A step was called with parameters that cannot work."""


class WorkspaceEscapeError(ParameterError):
    """A path parameter points outside the workspace."""


class InputError(CoordError):
    """Data a task read is unusable: missing file, wrong format, nothing to process."""

    exit_code = EXIT_USAGE

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


class ProviderError(CoordError):
    """Root of errors raised while talking to an LLM provider."""


class TaskError(CoordError):
    """The worker doing a task (a pipeline step, a command, an agent) could not finish it."""


class LimitError(CoordError):
    """A limit was hit."""


class BudgetExceeded(LimitError):
    """The run's budget does not cover more paid work."""


class InternalError(CoordError):
    """A bug in coord or a broken installation (a template that fails, a git command that breaks)."""


STEP_FAULTS: tuple[type[CoordError], ...] = (TaskError, InputError, ParameterError)
"""What a step raises on purpose: the task fails with the message (no traceback)."""
