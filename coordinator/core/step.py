"""The contract every pipeline step follows.

A step is a plain function registered with :func:`step`::

    @step("audit", limits={"threshold": {"gt": 0, "le": 1}})
    def audit(ctx: StepContext, *, sft_dir: WsPath = WsPath("data/sft"), threshold: float = 0.85) -> StepResult:
        ...

- The first argument is a :class:`StepContext`; every other parameter is keyword-only
  and JSON-serializable. Parameters annotated :data:`WsPath` are paths relative to the
  workspace; plans are rejected at load time when one escapes it.
- ``limits`` in the decorator declares what a parameter accepts beyond its type (ranges,
  shares adding up to 1, names, choices; see :class:`Limit`); a plan breaking one is rejected
  at load time too. The step keeps its own checks for callers that bypass a plan.
- It returns a :class:`StepResult`: flat metrics (the numbers gates read as
  ``<task>.<metric>``) and the artifacts it wrote.
- It is idempotent through :class:`StepRun`: same inputs and parameters give
  byte-identical outputs, and a re-run whose manifests still match is skipped.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import sys
import threading
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NewType

from coordinator.core.errors import ParameterError, WorkspaceEscapeError
from coordinator.core.feedback import Feedback
from coordinator.core.io import sha256_file
from coordinator.core.limits import Limit, LimitSpec
from coordinator.core.llm import CallRecord, Cost, SpendGuard, Usage
from coordinator.core.registry import STEP_GROUP, Registry, UnknownPlugin
from coordinator.core.version import VERSION

WsPath = NewType("WsPath", str)
"""A path relative to the workspace root (plans may not point outside it)."""

MetricValue = float | int | str | bool | None
ProgressFn = Callable[[str, float | None], None]



def resolve_in_workspace(workspace: Path, rel: str | Path) -> Path:
    """Resolve ``rel`` against ``workspace``; raise if the result leaves it."""
    root = Path(workspace).resolve()
    candidate = (root / rel).resolve()
    if candidate != root and root not in candidate.parents:
        raise WorkspaceEscapeError(f"path {str(rel)!r} escapes the workspace {str(root)!r}")
    return candidate


@dataclass(frozen=True)
class StepContext:
    """What a step gets from whoever runs it (the coordinator or a library caller)."""

    workspace: Path
    """Root directory; every WsPath parameter is relative to it."""
    progress: ProgressFn | None = None
    """Called with a message and an optional fraction done in [0, 1]."""
    force: bool = False
    """Run even when the manifests say the outputs are up to date."""
    spend: SpendGuard | None = None
    """Ledger recorder and budget check for steps that pay for API calls (None outside a budgeted run)."""
    feedback: Feedback | None = None
    """Why a gate (or a person) sent this task back: every earlier attempt's criteria, the reviewer
    model's findings, a person's note (None on a first attempt; see :class:`Feedback`)."""
    code_version: str | None = None
    """The running step's code version (coord's version + its source file's digest), set by the runner;
    part of every manifest key, so editing a step's code reruns it."""

    def path(self, rel: str | Path) -> Path:
        """Absolute path of a workspace-relative path, refusing escapes."""
        return resolve_in_workspace(self.workspace, rel)

    def rel(self, path: Path) -> str:
        """Workspace-relative POSIX form of an absolute path (for manifests and boards)."""
        try:
            return Path(path).resolve().relative_to(Path(self.workspace).resolve()).as_posix()
        except ValueError:
            return str(path)

    def report(self, message: str, fraction: float | None = None) -> None:
        """Report progress, if anyone listens."""
        if self.progress is not None:
            self.progress(message, fraction)

    def record_cost(self, usd: float | None, *, model: str, provider: str, tokens_in: int = 0,
                    tokens_out: int = 0, ref: str | None = None) -> None:
        """Put what this step spent into the run's cost ledger (it counts against the budget).

        ``usd`` None: the price is unknown (recorded and flagged, never guessed). ``ref``: an id that
        makes the record idempotent (a rerun recording the same ``ref`` adds nothing). Outside a
        budgeted run there is no ledger and nothing is recorded.
        """
        if usd is not None and (not math.isfinite(usd) or usd < 0):
            raise ParameterError(f"record_cost: usd must be a number ≥ 0 or None, got {usd!r}")
        if self.spend is None:
            return
        self.spend.record(CallRecord(
            kind="step", provider=provider, model=model,
            usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out),
            cost=Cost(usd, None if usd is not None else "the step reported no price"), ref=ref))


@dataclass(frozen=True)
class Artifact:
    """One file a step wrote."""

    path: str
    """Workspace-relative path."""
    sha256: str
    """Hex digest of the file's bytes."""
    bytes: int
    """Size in bytes."""
    rows: int | None = None
    """Records in the file, for JSONL outputs."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for state and manifests."""
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes, "rows": self.rows}


def _flat(value: Any) -> bool:
    if isinstance(value, list):
        return all(_flat(v) and not isinstance(v, list) for v in value)
    return value is None or isinstance(value, str | bool | numbers.Real)


def metrics_problem(metrics: Any) -> str | None:
    """Why ``metrics`` cannot be a task's metrics (``name: reason``), or None.

    Metrics are flat: each a number, string, boolean or null, or a list of them; numbers are finite
    (state and reports are JSON, which has no infinity or NaN). A step's and a command's are held to
    the same rules."""
    if not isinstance(metrics, Mapping):
        return f"expected a mapping of metric names to values, got {type(metrics).__name__}"
    for name, value in metrics.items():
        if not isinstance(name, str):
            return f"{name!r}: a metric's name is a string"
        if not _flat(value):
            return (f"{name}: a metric is a number, string, boolean, null or a list of them (no nested objects), "
                    f"got {type(value).__name__}")
        if any(isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isfinite(v)
               for v in (value if isinstance(value, list) else [value])):
            return f"{name}: not a finite number ({value!r})"
    return None


@dataclass
class StepResult:
    """What a step measured and produced."""

    metrics: dict[str, MetricValue] = field(default_factory=dict)
    """Flat metrics; gates address them as ``<task id>.<name>``."""
    artifacts: list[Artifact] = field(default_factory=list)
    """Files written (data files, reports); manifests are implied."""
    skipped: bool = False
    """True when the outputs were already up to date and nothing ran."""
    notes: list[str] = field(default_factory=list)
    """Short human-readable remarks for boards and logs."""
    replaced: list[str] = field(default_factory=list)
    """Workspace paths of outputs a person had changed since coord wrote them, which this run replaced."""


TaskParams = Mapping[str, Any]
TaskRecords = Mapping[str, Mapping[str, Any]]
ProvenanceFn = Callable[[list[str], Mapping[str, TaskParams], TaskRecords], "str | None"]
"""(finished task ids of this step, their parameters, their state records) → a sentence, or None."""


@dataclass(frozen=True)
class StepOptions:
    """What :func:`step` adds to a function beyond its signature."""

    name: str
    reads_run_status: bool = False
    """The step reads ``.coord/status.json``; boards are rendered right before it starts."""
    limits: dict[str, Limit] = field(default_factory=dict)
    paid: Callable[[TaskParams], bool] | None = None
    """Whether a task of this step may spend money, from its parameters (held when the budget is out)."""
    provenance: ProvenanceFn | None = None
    """Where the numbers of this step's finished tasks came from, for reports and review records."""
    board_note: Callable[[TaskParams], str | None] | None = None
    """A clause for the boards' provenance line before the step has run (e.g. "examples come from …")."""


@dataclass(frozen=True)
class StepSpec:
    """A registered step: its function and what its signature says."""

    name: str
    fn: Callable[..., StepResult]
    params: dict[str, inspect.Parameter]
    path_params: frozenset[str]
    code_version: str
    reads_run_status: bool = False
    """The step reads ``.coord/status.json``; boards are rendered right before it starts."""
    limits: dict[str, Limit] = field(default_factory=dict)
    """What numeric (and list / mapping) parameters accept, checked when a plan loads."""
    options: StepOptions | None = None
    """Everything :func:`step` declared (paid, provenance, board note)."""

    def is_paid(self, params: TaskParams) -> bool:
        """Whether a task of this step with ``params`` may spend money."""
        return bool(self.options and self.options.paid and self.options.paid(params))

    def required(self) -> list[str]:
        """Parameters without a default."""
        return [n for n, p in self.params.items() if p.default is inspect.Parameter.empty]

    def defaults(self) -> dict[str, Any]:
        """Parameters with a default, and their defaults."""
        return {n: p.default for n, p in self.params.items() if p.default is not inspect.Parameter.empty}


def _code_version(fn: Callable[..., Any]) -> str:
    src = inspect.getsourcefile(fn)
    digest = sha256_file(Path(src))[:12] if src else "unknown"
    return f"{VERSION}+{digest}"


def _build_spec(name: str, fn: Callable[..., StepResult], options: StepOptions) -> StepSpec:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if not params or params[0].kind is inspect.Parameter.KEYWORD_ONLY:
        raise TypeError(f"step {name!r}: first parameter must be the StepContext")
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:  # an annotation that does not resolve is the step author's to fix
        raise TypeError(f"step {name!r}: its annotations do not resolve ({type(e).__name__}: {e})") from None
    kw = {p.name: p for p in params[1:]}
    bad = [p.name for p in params[1:] if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    if bad:
        raise TypeError(f"step {name!r}: parameters {bad} must be keyword-only (put them after `*`)")
    if unknown := set(options.limits) - set(kw):
        raise TypeError(f"step {name!r}: limits name unknown parameters {sorted(unknown)}")
    if unknown := {lim.choices_from for lim in options.limits.values() if lim.choices_from} - set(kw):
        raise TypeError(f"step {name!r}: choices_from names unknown parameters {sorted(unknown)}")
    paths = frozenset(n for n in kw if _is_path_hint(hints.get(n)))
    return StepSpec(name, fn, kw, paths, _code_version(fn), options.reads_run_status, dict(options.limits),
                    options)


def step(name: str | None = None, *, reads_run_status: bool = False,
         limits: Mapping[str, LimitSpec] | None = None, paid: Callable[[TaskParams], bool] | None = None,
         provenance: ProvenanceFn | None = None, board_note: Callable[[TaskParams], str | None] | None = None,
         ) -> Callable[[Callable[..., StepResult]], Callable[..., StepResult]]:
    """Declare what a step accepts; the function itself is registered by an entry point or named
    as ``module:function`` in a plan.

    ``limits`` declares what parameters accept beyond their type — ``(low, high)`` inclusive
    bounds, or :class:`Limit` fields as a dict (``{"gt": 0, "lt": 1}``, ``{"ge": 0, "total": 1}``)
    — so a plan that sets one out of range is refused when it loads rather than when the step runs.
    ``paid``, ``provenance`` and ``board_note`` are what the budget, the reports and the boards ask
    a step (see :class:`StepOptions`). The signature is checked here, when the module is imported.
    """

    def mark(fn: Callable[..., StepResult]) -> Callable[..., StepResult]:
        label = name or fn.__name__
        try:
            checks = {k: Limit.of(v) for k, v in (limits or {}).items()}
        except TypeError as e:
            raise TypeError(f"step {label!r}: {e}") from None
        options = StepOptions(label, reads_run_status, checks, paid, provenance, board_note)
        _build_spec(label, fn, options)
        fn.__coord_step__ = options  # type: ignore[attr-defined]
        return fn

    return mark


def spec_of(name: str, fn: object) -> StepSpec:
    """The step spec of a function, decorated with :func:`step` or plain."""
    if not callable(fn):
        raise TypeError(f"step {name!r} must be a function (ctx, *, params) -> StepResult, got {fn!r}")
    options = getattr(fn, "__coord_step__", None)
    if not isinstance(options, StepOptions):
        options = StepOptions(name)
    return _build_spec(name, fn, options)


STEPS: Registry[StepSpec] = Registry(STEP_GROUP, "step", spec_of)
"""Steps registered under the entry-point group ``coord.steps`` (the week2 steps among them)."""

_by_ref: dict[tuple[str, str], StepSpec] = {}
_ref_lock = threading.Lock()


def resolve_step(ref: str, root: Path | None = None) -> StepSpec:
    """The step a plan's ``run:`` names: a registered name, or ``module:function``.

    A module is looked up in the workspace ``root`` first (``steps/pilot.py`` there is
    ``steps.pilot``), then among installed packages. Unknown names, modules that fail to
    import and functions with a wrong signature raise :class:`UnknownPlugin` saying why.
    """
    if ":" not in ref:
        try:
            return STEPS.get(ref)
        except TypeError as e:
            raise UnknownPlugin(str(e)) from None
    module_name, _, attr = ref.partition(":")
    key = (ref, str(root or ""))
    with _ref_lock:
        if key in _by_ref:
            return _by_ref[key]
        if root is not None and str(root) not in sys.path:
            sys.path.insert(0, str(root))
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # any error in user code at import time is reported, not raised through
            raise UnknownPlugin(f"step {ref!r}: cannot import {module_name!r}: {_where(e)}") from None
        fn: object = module
        for part in attr.split("."):
            fn = getattr(fn, part, None)
            if fn is None:
                raise UnknownPlugin(f"step {ref!r}: module {module_name!r} ({module.__file__}) has no "
                                    f"{attr!r}")
        try:
            spec = spec_of(ref, fn)
        except TypeError as e:
            raise UnknownPlugin(f"{e} ({_source_line(fn)})") from None
        _by_ref[key] = spec
        return spec


def _where(e: BaseException) -> str:
    """An exception with the file and line of user code it was raised in, when known."""
    if isinstance(e, SyntaxError) and e.filename:
        return f"{e.filename}:{e.lineno}: {e.msg}"
    if isinstance(e, ModuleNotFoundError) and e.name is not None and not _user_frames(e):
        return f"no module named {e.name!r} (looked in the workspace and on the Python path)"
    frames = _user_frames(e)
    where = f"{frames[-1][0]}:{frames[-1][1]}: " if frames else ""
    return f"{where}{type(e).__name__}: {e}"


_IMPORTLIB = str(Path(importlib.__file__).parent)


def _user_frames(e: BaseException) -> list[tuple[str, int]]:
    """(file, line) of the traceback's frames in real files (not the import machinery's frozen modules)."""
    out = []
    tb = e.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not (name.startswith("<") or name == __file__ or name.startswith(_IMPORTLIB)):
            out.append((name, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _source_line(fn: object) -> str:
    try:
        return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"  # type: ignore[arg-type]
    except (TypeError, OSError):
        return repr(fn)


def _is_path_hint(hint: Any) -> bool:
    if hint is WsPath:
        return True
    args = typing.get_args(hint)
    return any(_is_path_hint(a) for a in args)
