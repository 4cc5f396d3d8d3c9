"""Plan models: what a plan YAML may say, validated by pydantic.

A plan declares roles, tasks (pipeline steps or agent assignments), review
gates, a budget and profiles. :mod:`coordinator.engine.plan_loader` reads the YAML,
validates cross-references and compiles it into a :class:`CompiledPlan`
(foreach expanded, parameters substituted) that the graph runs.
"""

from __future__ import annotations

import re
from typing import Any, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from coordinator.core.registry import DRIVER_GROUP, VALIDATOR_GROUP, registered

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$"
CAPABILITY = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,39}")
"""What a capability a task ``requires`` (and a worker offers) may be called."""
Op = Literal["<=", "<", ">=", ">", "==", "!="]
Policy = Literal["auto", "human", "auto_then_human"]
OnFail = Literal["block", "retry", "defer"]
DriverName = NewType("DriverName", str)
"""``auto`` or a driver registered under ``coord.drivers`` (pipeline, offline, llm, cli, human, …)."""


def _registered(group: str, kind: str, value: str | None, also: tuple[str, ...] = ()) -> str | None:
    """``value`` when it names a plugin of ``group`` (or one of ``also``); a ValueError listing them otherwise."""
    if value is None or value in also:
        return value
    known = registered(group)
    if value not in known:
        raise ValueError(f"unknown {kind} {value!r} (known: {', '.join([*also, *known])})")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Validator = str
"""A validator registered under ``coord.validators`` (adp, openai, jsonl, …)."""


class ClaimsSpec(_Strict):
    """Where an agent's claimed figures are read, and which command check measures them.

    Exactly one of ``task`` or ``file``::

        claims: {task: fix_tests, against: tests}              # the task's notes and text outputs
        claims: {file: reports/status.md, against: tests}      # a workspace file

    Claims like "21 tests, 18 passing", "18/21 tests pass", "all 42 tests pass",
    "100% pass rate" or "18 passed, 3 failed" are parsed and compared with the
    pass/fail counts the ``against`` command check measured; every mismatch is
    a finding that shows the claim and the measurement side by side.
    """

    task: str | None = None
    """A task id: its notes and the text files it reported as artifacts are read."""
    file: str | None = None
    """A workspace path to read the claims from."""
    against: str
    """The ``id`` of a command check in the same list whose measured counts the claims must match."""

    @model_validator(mode="after")
    def _one_source(self) -> ClaimsSpec:
        if (self.task is None) == (self.file is None):
            raise ValueError("claims need exactly one of 'task' or 'file'")
        return self


Severity = Literal["blocker", "major", "minor", "info"]
"""How serious a reviewer model says a finding is, worst first."""


class ReviewSpec(_Strict):
    """Let a gate's reviewer model count (gates only)::

        review: {fail_on: blocker}     # fails when the model reports a blocker
        review: {fail_on: major}       # … a major or a blocker finding

    By default a reviewer model's findings are advisory: recorded next to the measured
    criteria, handed to the agent on a retry, never changing the verdict. With this
    criterion the gate counts them. When no reviewer model ran (none configured, the
    budget was exhausted, or its answer failed) the criterion is *not measured* and fails
    with the reason; it is never passed silently.
    """

    fail_on: Literal["blocker", "major", "minor"] = "blocker"
    """The lowest severity that fails the criterion."""


CHECK_KINDS = ("metric", "file", "command", "claims", "review")


class Check(_Strict):
    """One measured check: a metric comparison, a file check, a command, a claims check, or
    (on gates) whether the reviewer model reported a finding at or above a severity."""

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    """Stable name (defaults to a name derived from what it checks)."""
    label: str | None = None
    """What a person reads on the board."""
    metric: str | None = None
    """``<task>.<metric>`` to compare with ``value``."""
    op: Op = ">="
    value: float | int | bool | str | None = None
    file: str | None = None
    """A workspace path (file or directory of files) that must exist and parse (.json/.jsonl/.yaml)."""
    validator: Validator | None = None
    """With ``file``: also validate it as ``adp`` (Agent Data Protocol), ``openai`` (chat
    fine-tuning JSONL) or ``jsonl`` (every line parses); a directory validates each file in it."""
    command: str | None = None
    """A shell command run in the workspace; passes on exit code 0 and no failures in a
    pytest-style summary ("18 passed, 3 failed" fails even with exit 0; counts are recorded).
    With ``metric``: the command writes a JSON object of numbers to the file ``$COORD_METRICS``
    and the check compares ``metric`` (a key of it) with ``value``; the measured number is
    shown on the review record and board."""
    claims: ClaimsSpec | None = None
    """Compare figures an agent claimed with what a command check measured (see :class:`ClaimsSpec`)."""
    review: ReviewSpec | None = None
    """Gates only: count the reviewer model's findings (see :class:`ReviewSpec`)."""
    weight: float = Field(default=1.0, ge=0)
    critical: bool = False
    """A failed critical check fails the gate whatever the score."""
    defer: str | None = None
    """If this check fails on a gate, carry this text as a deferred item instead of failing."""
    resolved_by: list[str] = Field(default_factory=list)
    """Tasks whose completion resolves the deferred item."""

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, value: str | None) -> str | None:
        return _registered(VALIDATOR_GROUP, "validator", value)

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if set(kinds) == {"metric", "command"}:  # a number the command wrote to $COORD_METRICS
            if self.value is None:
                raise ValueError("a command check with a 'metric' needs a 'value' to compare with")
            return self
        if len(kinds) != 1:
            raise ValueError("a check needs exactly one of 'metric', 'file', 'command', 'claims' or 'review'"
                             + (f" (got {', '.join(kinds)})" if kinds else ""))
        if self.metric is not None:
            if self.value is None:
                raise ValueError("a metric check needs a 'value' to compare with")
            if "." not in self.metric:
                raise ValueError(f"metric {self.metric!r} must look like '<task>.<metric>'")
        if self.validator is not None and self.file is None:
            raise ValueError("'validator' only applies to a 'file' check")
        return self

    @property
    def name(self) -> str:
        """The check's id, or one derived from its target."""
        if self.id:
            return self.id
        target = self.metric or self.file or self.command  # a command's metric names the check
        if target is None and self.claims is not None:
            target = f"claims_{self.claims.task or self.claims.file}_vs_{self.claims.against}"
        if target is None and self.review is not None:
            target = f"review_{self.review.fail_on}"
        return "".join(c if c.isalnum() else "_" for c in target or "check").strip("_")[:60]

    def describe(self) -> str:
        """Human form, e.g. ``audit.exact_dup_rate <= 0.01``."""
        if self.label:
            return self.label
        if self.metric is not None and self.command is not None:
            return f"{self.metric} {self.op} {self.value} (measured by `{self.command}`)"
        if self.metric is not None:
            return f"{self.metric} {self.op} {self.value}"
        if self.file is not None:
            return f"file {self.file} exists" + (f" and validates as {self.validator}" if self.validator else "")
        if self.claims is not None:
            source = f"task {self.claims.task}" if self.claims.task else f"file {self.claims.file}"
            return f"claims in {source} match check {self.claims.against}"
        if self.review is not None:
            worse = {"blocker": "", "major": " or blocker", "minor": ", major or blocker"}[self.review.fail_on]
            return f"reviewer model reports no {self.review.fail_on}{worse} finding"
        return f"command `{self.command}` exits 0"


class TaskSpec(_Strict):
    """A unit of work owned by one role."""

    id: str = Field(pattern=ID_PATTERN)
    title: str
    role: str
    needs: list[str] = Field(default_factory=list)
    run: str | None = None
    """A step: a registered name or ``module:function`` (a task with ``run`` is a *step*)."""
    command: str | list[str] | None = None
    """A command run in the workspace: a string through the shell, a list without one (a task with
    ``command`` is a *command task*). ``${param}``, ``${item}`` and ``${task.metric}`` of a task it
    needs are filled in (shell-quoted in a string)."""
    outputs: list[str] = Field(default_factory=list)
    """Command tasks: the files it writes (workspace paths). They get manifests with sha256, and a
    rerun with the same command, parameters and inputs is skipped while they still match."""
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
    requires: list[str] = Field(default_factory=list)
    """Capabilities a worker must offer to be handed this task (``[gpu]``, ``[claude-cli]``); with workers
    configured the task waits until one that offers all of them is running (docs/workers.md)."""

    @field_validator("requires")
    @classmethod
    def _capability_names(cls, requires: list[str]) -> list[str]:
        for i, name in enumerate(requires):
            if not CAPABILITY.fullmatch(name):
                raise ValueError(f"requires[{i}]: {name!r} is not a capability name (lower-case letters, digits, "
                                 "'-', '_' and '.', starting with a letter or digit, at most 40)")
        if len(set(requires)) != len(requires):
            raise ValueError(f"requires names a capability twice: {sorted(requires)}")
        return requires

    @field_validator("accept")
    @classmethod
    def _no_review_checks(cls, accept: list[Check]) -> list[Check]:
        bad = [i for i, c in enumerate(accept) if c.review is not None]
        if bad:
            raise ValueError(f"accept[{bad[0]}]: a 'review' check applies to gates only (a task's accept "
                             "checks are measured before any reviewer sees the work)")
        return accept

    @model_validator(mode="after")
    def _step_or_assignment(self) -> TaskSpec:
        if sum(x is not None for x in (self.run, self.instructions, self.command)) != 1:
            raise ValueError("a task needs exactly one of 'run' (a step), 'command' (a command) or "
                             "'instructions' (an assignment for an agent)")
        if self.outputs and self.command is None:
            raise ValueError("'outputs' only applies to 'command' tasks (a step records its own)")
        if isinstance(self.command, list) and (not self.command or not all(isinstance(a, str) for a in self.command)):
            raise ValueError("a command list needs at least one argument, all strings")
        if self.run is None and self.with_:
            raise ValueError("'with' only applies to 'run' tasks")
        return self


class GateSpec(_Strict):
    """A review after some tasks: measured criteria, a grade and a verdict.

    ``policy`` says who decides: ``auto`` (the measured verdict), ``human`` (always
    waits for ``coord approve/reject/override``) or ``auto_then_human`` (the measured
    verdict stands unless a person overrides it within ``override_window`` seconds;
    tasks the gate blocks wait until the window closes or a person decides).
    ``on_fail`` says what a failing verdict does: ``block`` the gated tasks, ``retry``
    the reviewed tasks with the findings as feedback (up to ``max_retries`` times, then
    block) or ``defer`` (continue; every failed non-critical criterion becomes a deferred
    item — a failed critical criterion still blocks).
    """

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
    """With ``on_fail: retry``: how many times the reviewed tasks are sent back."""
    override_window: float = Field(default=30.0, ge=0)
    """With ``policy: auto_then_human``: seconds a person has to override the automatic verdict."""

    @model_validator(mode="after")
    def _weighed(self) -> GateSpec:
        if sum(c.weight for c in self.criteria) <= 0 and not all(c.critical for c in self.criteria):
            raise ValueError("every criterion has weight 0, so the gate's score (10 with nothing weighed) could not "
                             "fall whatever they measure; give one a weight above 0, or make every one critical "
                             "(a failed critical criterion fails the gate)")
        return self


class Grading(_Strict):
    """The letter-grade scale of a plan's gates and report cards.

    ``scale`` maps a letter to the lowest score (0–10) that earns it; a score below
    every threshold gets ``fail_grade``. The default is A ≥ 9.3, A- ≥ 9.0, B+ ≥ 8.7,
    B ≥ 8.3, B- ≥ 8.0, C+ ≥ 7.7, C ≥ 7.3, C- ≥ 7.0, D ≥ 6.0, else F.
    """

    scale: dict[str, float] = Field(default_factory=lambda: {
        "A": 9.3, "A-": 9.0, "B+": 8.7, "B": 8.3, "B-": 8.0,
        "C+": 7.7, "C": 7.3, "C-": 7.0, "D": 6.0})
    fail_grade: str = "F"

    @model_validator(mode="after")
    def _sane(self) -> Grading:
        if not self.scale:
            raise ValueError("a grading scale needs at least one letter")
        bad = [k for k, v in self.scale.items() if not 0 <= v <= 10]
        if bad:
            raise ValueError(f"thresholds must lie in [0, 10] (check {', '.join(map(repr, bad))})")
        if self.fail_grade in self.scale:
            raise ValueError(f"fail_grade {self.fail_grade!r} is also on the scale")
        return self

    def letters(self) -> list[str]:
        """Every letter a gate can get, best first."""
        return [k for k, _ in sorted(self.scale.items(), key=lambda kv: -kv[1])] + [self.fail_grade]


KNOWN_AGENTS = ("claude", "codex", "cursor", "human")
"""The agents coord knows by name. Any other name is an agent of the user's own (a label and a board),
unless it looks like a typo of one of these."""


def agent_problem(name: str) -> str | None:
    """Why ``name`` is not a usable agent name: a near miss of a known agent (``claud``), or empty."""
    if not name.strip():
        return "an agent needs a name"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,39}", name):
        return (f"agent name {name!r} must start with a letter and hold only letters, digits, '-' and '_' "
                "(at most 40): it names the agent's board file, task_boards/<AGENT>_TASKS.md")
    if name in KNOWN_AGENTS:
        return None
    close = next((known for known in KNOWN_AGENTS if _one_slip(name.lower(), known)), None)
    if close:
        return (f"unknown agent {name!r}: did you mean {close!r}? (coord's agents: {', '.join(KNOWN_AGENTS)}; "
                "a name of your own must not look like one of them)")
    return None


def _one_slip(typed: str, known: str) -> bool:
    """``typed`` is ``known`` but for its case, one letter left out or added, or two neighbours swapped
    (``Claude``, ``claud``, ``claudee``, ``cluade``; not ``coder`` for ``codex``, a name of its own)."""
    if typed == known:
        return True
    if abs(len(typed) - len(known)) == 1:
        short, long_ = sorted((typed, known), key=len)
        return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))
    if len(typed) == len(known):
        diff = [i for i, (a, b) in enumerate(zip(typed, known, strict=True)) if a != b]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and typed[diff[0]] == known[diff[1]] \
            and typed[diff[1]] == known[diff[0]]
    return False


class RoleBinding(_Strict):
    """Who plays a role and how work reaches them."""

    agent: str
    driver: DriverName = DriverName("auto")

    @field_validator("agent")
    @classmethod
    def _no_typo_of_a_known_agent(cls, value: str) -> str:
        problem = agent_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    """``auto``: the real driver when configured, else the offline stand-in."""

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, value: str) -> DriverName:
        return DriverName(_registered(DRIVER_GROUP, "driver", value, also=("auto",)) or value)
    model: str | None = None
    budget_usd: float | None = Field(default=None, ge=0)
    # --- LLM provider of the `llm` driver (roles/providers); keys only ever come from the environment ---
    provider: Literal["anthropic", "openai", "openai_compatible", "offline"] | None = None
    """LLM provider for ``driver: llm`` (and ``auto``, which picks llm when this provider's key is set)."""
    base_url: str | None = None
    """API endpoint override; required for ``openai_compatible`` (Ollama, vLLM, LM Studio)."""
    api_key_env: str | None = None
    """Environment variable holding the key (default ANTHROPIC_API_KEY / OPENAI_API_KEY)."""
    env_file: str | None = None
    """A dotenv file to read the key variable from when it is not in the environment."""
    api: Literal["chat", "responses"] = "chat"
    """OpenAI API flavour."""
    stream: bool = False
    """Stream answers (a stream cut short is retried)."""
    timeout: float | None = Field(default=None, gt=0, le=3600)
    """Seconds one request to the provider may take before it is abandoned and retried (default 120)."""
    executable: str | None = None
    """cli driver: the program to run (default ``claude``, ``codex``, or ``agent`` for cursor)."""
    flags: list[str] = Field(default_factory=list)
    """cli driver: extra arguments passed to the agent CLI before the prompt."""
    permissions: str | None = None
    """cli driver: claude ``--permission-mode`` (default acceptEdits), codex ``--sandbox``
    (default workspace-write), cursor ``force`` (default, passes ``--force``) or ``default``."""
    allowed_tools: list[str] = Field(default_factory=list)
    """cli driver, claude only: tools the agent may use without asking, passed as ``--allowedTools``
    (e.g. ``"Bash(python -m pytest:*)"`` lets it run the tests its accept checks will run)."""

    @model_validator(mode="after")
    def _allowed_tools_for_claude(self) -> RoleBinding:
        if self.allowed_tools and self.agent != "claude":
            how = {"codex": "codex runs commands inside its --sandbox (permissions: workspace-write)",
                   "cursor": "cursor runs commands with permissions: force"}.get(self.agent, "")
            raise ValueError(f"allowed_tools is a Claude Code setting (--allowedTools); agent {self.agent!r} "
                             "does not take it" + (f": {how}" if how else ""))
        return self


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
    grading: Grading = Field(default_factory=Grading)
    """Letter-grade scale for gates and report cards."""
    profiles: dict[str, Profile] = Field(default_factory=lambda: {
        "thorough": Profile(description="run every task"),
        "speed": Profile(description="skip optional tasks", skip_optional=True),
    })
    default_profile: str = "thorough"

    @field_validator("roles")
    @classmethod
    def _extend_default_roles(cls, roles: dict[str, RoleBinding]) -> dict[str, RoleBinding]:
        """A plan's ``roles:`` adds roles to lead/quality/execution and rebinds them role by role."""
        return {**DEFAULT_ROLES, **roles}


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
    command: str | list[str] | None = None
    outputs: list[str] = Field(default_factory=list)
    accept: list[Check]
    optional: bool
    skip: bool
    """Skipped by the profile before the run starts."""
    retries: int
    retry_backoff: float
    timeout: float | None
    requires: list[str] = Field(default_factory=list)
    """Capabilities a worker must offer to be handed this task (only workers read it)."""
    blocked_by: list[str] = Field(default_factory=list)
    """Gates that must approve before this task starts."""
    fanout: str | None = None
    """``task.metric`` when this task fans out at run time (``foreach: ${pilot.shards}``): it is replaced
    by one task per item of that upstream metric once the upstream task is done."""


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
    grading: Grading = Field(default_factory=Grading)

    _by_role: tuple[Any, Any, dict[str, list[CompiledTask]]] | None = PrivateAttr(default=None)

    def tasks_of_role(self, role: str) -> list[CompiledTask]:
        """Tasks owned by ``role`` in plan order (grouped once per ``tasks``/``order`` pair: a board render
        asks for every role's tasks, and a fanned-out copy of the plan has its own)."""
        cached = self._by_role
        if cached is None or cached[0] is not self.tasks or cached[1] is not self.order:
            groups: dict[str, list[CompiledTask]] = {}
            for t in self.order:
                groups.setdefault(self.tasks[t].role, []).append(self.tasks[t])
            cached = self._by_role = (self.tasks, self.order, groups)
        return list(cached[2].get(role, ()))

    def dependents(self, task_id: str) -> list[str]:
        """Tasks that list ``task_id`` in their needs."""
        return [t for t in self.order if task_id in self.tasks[t].needs]
