"""coord's exception hierarchy: one root, split by whose fault it is."""

from __future__ import annotations

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


class WorkspaceBusyError(UsageError):
    """Another coord process holds the workspace lock."""

    def __init__(self, message: str, *, holder: str = "", run_id: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder
        """What the lock file says about its holder (``pid 123 run <id>``)."""
        self.run_id = run_id
        """The run the holder is executing, when it is a run."""


class BudgetExceeded(CoordError):
    """A limit was hit: the run's budget does not cover more paid work."""
