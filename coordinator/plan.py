"""Plan models: what a plan YAML may say, validated by pydantic.

A plan declares roles, tasks (pipeline steps or agent assignments), review
gates, a budget and profiles. :mod:`coordinator.plan_loader` reads the YAML,
validates cross-references and compiles it into a :class:`CompiledPlan`
(foreach expanded, parameters substituted) that the graph runs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$"
Op = Literal["<=", "<", ">=", ">", "==", "!="]
Policy = Literal["auto", "human", "auto_then_human"]
OnFail = Literal["block", "retry", "defer"]
DriverName = Literal["auto", "pipeline", "offline", "llm", "cli", "human"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Check(_Strict):
    """One measured check: a metric comparison, a file check or a command."""

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    """Stable name (defaults to a name derived from what it checks)."""
    label: str | None = None
    """What a person reads on the board."""
    metric: str | None = None
    """``<task>.<metric>`` to compare with ``value``."""
    op: Op = ">="
    value: float | int | bool | str | None = None
    file: str | None = None
    """A workspace path that must exist (and parse, for .json/.jsonl/.yaml)."""
    command: str | None = None
    """A shell command run in the workspace; passes on exit code 0."""
    weight: float = Field(default=1.0, ge=0)
    critical: bool = False
    """A failed critical check fails the gate whatever the score."""
    defer: str | None = None
    """If this check fails on a gate, carry this text as a deferred item instead of failing."""
    resolved_by: list[str] = Field(default_factory=list)
    """Tasks whose completion resolves the deferred item."""

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [k for k in ("metric", "file", "command") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a check needs exactly one of 'metric', 'file' or 'command'"
                             + (f" (got {', '.join(kinds)})" if kinds else ""))
        if self.metric is not None:
            if self.value is None:
                raise ValueError("a metric check needs a 'value' to compare with")
            if "." not in self.metric:
                raise ValueError(f"metric {self.metric!r} must look like '<task>.<metric>'")
        return self

    @property
    def name(self) -> str:
        """The check's id, or one derived from its target."""
        if self.id:
            return self.id
        target = self.metric or self.file or self.command or "check"
        return "".join(c if c.isalnum() else "_" for c in target).strip("_")[:60]

    def describe(self) -> str:
        """Human form, e.g. ``audit.exact_dup_rate <= 0.01``."""
        if self.label:
            return self.label
        if self.metric is not None:
            return f"{self.metric} {self.op} {self.value}"
        if self.file is not None:
            return f"file {self.file} exists"
        return f"command `{self.command}` exits 0"


class TaskSpec(_Strict):
    """A unit of work owned by one role."""

    id: str = Field(pattern=ID_PATTERN)
    title: str
    role: str
    needs: list[str] = Field(default_factory=list)
    run: str | None = None
    """A registered pipeline step (a task with ``run`` is a *step*)."""
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    instructions: str | None = None
    """What the agent is asked to do (a task with ``instructions`` is an *assignment*)."""
    accept: list[Check] = Field(default_factory=list)
    """Checks coord runs before it accepts an assignment (or step) as done."""
    foreach: list[Any] | str | None = None
    """Fan out into one task per item (``${item}`` in ``with``/``instructions``)."""
    optional: bool = False
    retries: int = Field(default=0, ge=0, le=10)
    retry_backoff: float = Field(default=1.0, ge=0)
    """Seconds before the first retry; doubled each time."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds; a task running longer fails."""

    @model_validator(mode="after")
    def _step_or_assignment(self) -> TaskSpec:
        if (self.run is None) == (self.instructions is None):
            raise ValueError("a task needs exactly one of 'run' (a pipeline step) or "
                             "'instructions' (an assignment for an agent)")
        if self.run is None and self.with_:
            raise ValueError("'with' only applies to 'run' tasks")
        return self


class GateSpec(_Strict):
    """A review after some tasks: measured criteria, a grade and a verdict."""

    id: str = Field(pattern=ID_PATTERN)
    title: str | None = None
    after: list[str] = Field(min_length=1)
    reviewer: str = "quality"
    criteria: list[Check] = Field(min_length=1)
    policy: Policy = "auto"
    on_fail: OnFail = "block"
    blocks: list[str] = Field(default_factory=list)
    """Tasks that may not start until this gate approves."""
    pass_score: float = Field(default=7.0, ge=0, le=10)
    """Minimum score (0–10) for approval when no critical check failed."""
    max_retries: int = Field(default=1, ge=0, le=5)


class RoleBinding(_Strict):
    """Who plays a role and how work reaches them."""

    agent: str
    driver: DriverName = "auto"
    """``auto``: the real driver when configured, else the offline stand-in."""
    model: str | None = None
    budget_usd: float | None = Field(default=None, ge=0)
    executable: str | None = None
    """cli driver: the program to run (default ``claude``, ``codex``, or ``agent`` for cursor)."""
    flags: list[str] = Field(default_factory=list)
    """cli driver: extra arguments passed to the agent CLI before the prompt."""
    permissions: str | None = None
    """cli driver: claude ``--permission-mode`` (default acceptEdits), codex ``--sandbox``
    (default workspace-write), cursor ``force`` (default, passes ``--force``) or ``default``."""


class Budget(_Strict):
    """Spending limit of one run."""

    usd: float | None = Field(default=None, ge=0)
    alerts: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.8])


class Profile(_Strict):
    """A named variant of the plan."""

    description: str | None = None
    skip_optional: bool = False
    set: dict[str, Any] = Field(default_factory=dict)
    """Parameter overrides applied by this profile."""


DEFAULT_ROLES: dict[str, RoleBinding] = {
    "lead": RoleBinding(agent="claude"),
    "quality": RoleBinding(agent="codex"),
    "execution": RoleBinding(agent="cursor"),
}


class PlanSpec(_Strict):
    """A whole plan file."""

    name: str = Field(pattern=ID_PATTERN)
    title: str | None = None
    description: str | None = None
    version: int = 1
    params: dict[str, Any] = Field(default_factory=dict)
    roles: dict[str, RoleBinding] = Field(default_factory=lambda: dict(DEFAULT_ROLES))
    tasks: list[TaskSpec] = Field(min_length=1)
    gates: list[GateSpec] = Field(default_factory=list)
    budget: Budget = Field(default_factory=Budget)
    profiles: dict[str, Profile] = Field(default_factory=lambda: {
        "thorough": Profile(description="run every task"),
        "speed": Profile(description="skip optional tasks", skip_optional=True),
    })
    default_profile: str = "thorough"


class CompiledTask(_Strict):
    """A task after foreach expansion and parameter substitution."""

    id: str
    base_id: str
    item: Any = None
    title: str
    role: str
    needs: list[str]
    run: str | None
    params: dict[str, Any]
    instructions: str | None
    accept: list[Check]
    optional: bool
    skip: bool
    """Skipped by the profile before the run starts."""
    retries: int
    retry_backoff: float
    timeout: float | None
    blocked_by: list[str] = Field(default_factory=list)
    """Gates that must approve before this task starts."""


class CompiledPlan(_Strict):
    """The plan a run executes, fixed at run start and stored with the run."""

    name: str
    title: str
    source: str
    sha256: str
    profile: str
    params: dict[str, Any]
    roles: dict[str, RoleBinding]
    tasks: dict[str, CompiledTask]
    order: list[str]
    """Task ids in a topological order (stable: plan order where possible)."""
    gates: dict[str, GateSpec]
    gate_after: dict[str, list[str]]
    """Gate id → concrete task ids it reviews."""
    budget: Budget

    def tasks_of_role(self, role: str) -> list[CompiledTask]:
        """Tasks owned by ``role`` in plan order."""
        return [self.tasks[t] for t in self.order if self.tasks[t].role == role]

    def dependents(self, task_id: str) -> list[str]:
        """Tasks that list ``task_id`` in their needs."""
        return [t for t in self.order if task_id in self.tasks[t].needs]
