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

import hashlib
import importlib
import inspect
import itertools
import math
import re
import sys
import threading
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NewType

import orjson

from coordinator.core.errors import ParameterError, WorkspaceEscapeError
from coordinator.core.io import atomic_write_json, sha256_file
from coordinator.core.llm import SpendGuard
from coordinator.core.registry import STEP_GROUP, Registry, UnknownPlugin
from coordinator.core.version import VERSION

WsPath = NewType("WsPath", str)
"""A path relative to the workspace root (plans may not point outside it)."""

MetricValue = float | int | str | bool | None
ProgressFn = Callable[[str, float | None], None]

MANIFEST_SCHEMA_VERSION = 1


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
    feedback: tuple[str, ...] = ()
    """Review findings from a gate that sent this task back (empty on a first run)."""
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


@dataclass(frozen=True)
class Limit:
    """What a step accepts for one parameter beyond its type; checked when a plan loads.

    Bounds apply to a number, or to every number in a list or mapping (nested ones too):
    ``ge``/``le`` inclusive, ``gt``/``lt`` exclusive. ``total``: the numbers of a list or mapping
    add up to it (shares). ``keys``: the keys a mapping may have. ``size``/``min_size``: a
    list's length, exact or least. ``ascending``: a list's numbers never decrease. ``unique``:
    no item twice. ``choices``/``pattern``: what a string (or every string in a list) may be.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    total: float | None = None
    keys: tuple[str, ...] | None = None
    size: int | None = None
    min_size: int | None = None
    ascending: bool = False
    unique: bool = False
    choices: tuple[str, ...] | None = None
    pattern: str | None = None

    @classmethod
    def of(cls, spec: tuple[float | None, float | None] | Mapping[str, Any] | Limit) -> Limit:
        """A limit from its declaration: an inclusive ``(low, high)`` pair or keyword fields."""
        if isinstance(spec, Limit):
            return spec
        if isinstance(spec, tuple):
            low, high = spec
            return cls(ge=low, le=high)
        unknown = set(spec) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown limit fields {sorted(unknown)}")
        given: dict[str, Any] = {k: tuple(v) if k in ("keys", "choices") else v for k, v in spec.items()}
        return cls(**given)

    def bounds(self) -> str:
        """The bounds in words: ``from 1 to 64``, ``at least 1``, ``in (0, 1]``."""
        low, opening = (self.ge, "[") if self.ge is not None else (self.gt, "(")
        high, closing = (self.le, "]") if self.le is not None else (self.lt, ")")
        if low is not None and high is not None:
            if self.ge is not None and self.le is not None:
                return f"from {low:g} to {high:g}"
            return f"in {opening}{low:g}, {high:g}{closing}"
        if low is not None:
            return f"at least {low:g}" if self.ge is not None else f"greater than {low:g}"
        if high is not None:
            return f"at most {high:g}" if self.le is not None else f"less than {high:g}"
        return "any number"

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` breaks this limit (``name`` is the parameter), or None."""
        if isinstance(value, Mapping) and self.keys is not None:
            unknown = [k for k in value if k not in self.keys]
            if unknown:
                return f"{name} has unknown keys {unknown} (allowed: {', '.join(self.keys)})"
        if isinstance(value, list):
            if self.size is not None and len(value) != self.size:
                return f"{name} must have {self.size} items, got {value!r}"
            if self.min_size is not None and len(value) < self.min_size:
                return f"{name} must have at least {self.min_size} item(s), got {value!r}"
            twice = sorted({repr(v) for i, v in enumerate(value) if v in value[:i]})
            if self.unique and twice:
                return f"{name} lists {', '.join(twice)} more than once"
        leaves = _leaves(name, value)
        numbers = [(where, v) for where, v in leaves
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        for where, v in leaves:
            if isinstance(v, str) and self.choices is not None and v not in self.choices:
                return f"{where} must be one of {', '.join(self.choices)}, got {v!r}"
            if isinstance(v, str) and self.pattern is not None and not re.fullmatch(self.pattern, v):
                return f"{where} must match {self.pattern}, got {v!r}"
        for where, v in numbers:
            if not self._within(v):
                return f"{where} must be {self.bounds()}, got {v!r}"
        if self.ascending and any(b < a for (_, a), (_, b) in itertools.pairwise(numbers)):
            return f"{name} must be in ascending order, got {value!r}"
        total = sum(v for _, v in numbers)
        if self.total is not None and isinstance(value, list | Mapping) \
                and not math.isclose(total, self.total, abs_tol=1e-6):
            return f"{name} must add up to {self.total:g}, got {total:g}"
        return None

    def _within(self, x: float) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))


def _leaves(where: str, value: Any) -> list[tuple[str, Any]]:
    """Every scalar in ``value`` with its place (``target['easy']``, ``agents[2]``)."""
    if isinstance(value, Mapping):
        return [leaf for k, v in value.items() for leaf in _leaves(f"{where}[{k!r}]", v)]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(f"{where}[{i}]", v)]
    return [(where, value)]


LimitSpec = tuple[float | None, float | None] | Mapping[str, Any] | Limit
"""How a step declares a limit: an inclusive ``(low, high)`` pair (None: unbounded) or :class:`Limit` fields."""


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
    tb = e.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    where = f"{last.tb_frame.f_code.co_filename}:{last.tb_lineno}: " if last is not None else ""
    return f"{where}{type(e).__name__}: {e}"


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


def canonical_json(obj: Any) -> bytes:
    """Stable bytes for hashing parameters."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def fingerprint(path: Path) -> str:
    """sha256 of a file, reusing its manifest's digest when size and mtime still match."""
    path = Path(path)
    st = path.stat()
    man = manifest_path(path)
    if man.exists():
        try:
            data = orjson.loads(man.read_bytes())
            if data.get("bytes") == st.st_size and data.get("mtime_ns") == st.st_mtime_ns:
                return str(data["sha256"])
        except (orjson.JSONDecodeError, KeyError, OSError):
            pass
    return sha256_file(path)


def manifest_path(output: Path) -> Path:
    """Where the manifest of ``output`` lives."""
    output = Path(output)
    return output.with_name(f"{output.name}.manifest.json")


class StepRun:
    """Manifest bookkeeping for one execution of a step.

    Usage inside a step::

        run = StepRun(ctx, "audit", params, inputs=[...], outputs=[...])
        if (cached := run.cached()) is not None:
            return cached
        ... write outputs ...
        run.record(out_path, rows=n, sha256=writer.sha256)
        return run.finish(metrics)
    """

    def __init__(self, ctx: StepContext, step_name: str, params: dict[str, Any], *,
                 inputs: Sequence[Path], outputs: Sequence[Path], seed: int | None = None,
                 provider: str | None = None) -> None:
        self.ctx = ctx
        self.step = step_name
        self.params = params
        self.seed = seed
        self.provider = provider
        self.outputs = [Path(o) for o in outputs]
        spec = STEPS.find(step_name) if ctx.code_version is None else None
        self.code_version = ctx.code_version or (spec.code_version if spec else "unregistered")
        self.inputs = {ctx.rel(p): fingerprint(p) for p in sorted(Path(i) for i in inputs)}
        h = hashlib.sha256()
        h.update(canonical_json({"step": step_name, "code": self.code_version, "params": params,
                                 "inputs": self.inputs, "seed": seed, "provider": provider}))
        self.key = h.hexdigest()
        self._records: dict[Path, dict[str, Any]] = {}

    def cached(self) -> StepResult | None:
        """The previous result when every output's manifest matches this run's key."""
        if self.ctx.force or not self.outputs:
            return None
        metrics: dict[str, MetricValue] | None = None
        artifacts = []
        for out in self.outputs:
            man = manifest_path(out)
            if not out.exists() or not man.exists():
                return None
            try:
                data = orjson.loads(man.read_bytes())
            except (orjson.JSONDecodeError, OSError):
                return None
            if data.get("key") != self.key or fingerprint(out) != data.get("sha256"):
                return None
            metrics = data.get("step_metrics", {})
            artifacts.append(Artifact(self.ctx.rel(out), data["sha256"], data["bytes"], data.get("rows")))
        return StepResult(metrics=dict(metrics or {}), artifacts=artifacts, skipped=True,
                          notes=["outputs up to date; step skipped"])

    def record(self, output: Path, *, rows: int | None = None, sha256: str | None = None,
               rejects: int = 0, extra: dict[str, Any] | None = None) -> None:
        """Note one finished output (call after it is in place)."""
        output = Path(output)
        st = output.stat()
        self._records[output] = {
            "rows": rows,
            "sha256": sha256 or sha256_file(output),
            "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "rejects": rejects,
            "extra": extra or {},
        }

    def finish(self, metrics: dict[str, MetricValue], notes: Sequence[str] = ()) -> StepResult:
        """Write a manifest beside every output and return the step result."""
        missing = [str(o) for o in self.outputs if o not in self._records]
        if missing:
            raise ParameterError(f"step {self.step!r} declared outputs it did not record: {missing}")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        artifacts = []
        for out, rec in self._records.items():
            manifest = {
                "schema_version": MANIFEST_SCHEMA_VERSION,
                "step": self.step,
                "output": self.ctx.rel(out),
                "sha256": rec["sha256"],
                "bytes": rec["bytes"],
                "mtime_ns": rec["mtime_ns"],
                "rows": rec["rows"],
                "rejects": rec["rejects"],
                "inputs": self.inputs,
                "params": self.params,
                "seed": self.seed,
                "provider": self.provider,
                "code_version": self.code_version,
                "key": self.key,
                "created_at": now,
                "extra": rec["extra"],
                "step_metrics": metrics,
            }
            atomic_write_json(manifest_path(out), manifest)
            # atomic_write_json replaced a sibling, not the output: its mtime is unchanged
            artifacts.append(Artifact(self.ctx.rel(out), rec["sha256"], rec["bytes"], rec["rows"]))
        return StepResult(metrics=dict(metrics), artifacts=artifacts, notes=list(notes))

