"""Load, validate and compile plans.

Every problem is reported with the file, the line and the path inside the
plan (``tasks[3].needs[0]``); all problems found are reported together.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from coordinator.core import refs
from coordinator.core.errors import ConfigError, PlanError, PlanErrors, UsageError
from coordinator.core.plan import (
    DEFAULT_ROLES,
    Check,
    CompiledPlan,
    CompiledTask,
    GateSpec,
    PlanSpec,
    TaskSpec,
)
from coordinator.core.registry import UnknownPlugin
from coordinator.core.step import StepSpec, resolve_step
from coordinator.core.yaml_io import (
    Loc,
    Located,
    format_loc,
    load_file,
    load_located,
    read_yaml_text,
)

BUILTIN_PACKAGE = "coordinator.plans"


def builtin_plans() -> dict[str, str]:
    """Names of the plans shipped with coord → their YAML text."""
    out = {}
    for entry in resources.files(BUILTIN_PACKAGE).iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = entry.read_text(encoding="utf-8")
    return dict(sorted(out.items()))


def _read_plan(path: Path) -> str:
    try:
        return read_yaml_text(path)
    except ConfigError as e:
        raise PlanError(e.message, file=e.file, line=e.line) from None


def find_plan(ref: str, workspace: Path | None = None) -> tuple[str, str]:
    """Resolve a plan reference (a file path, a workspace plan or a built-in name) to (source, text)."""
    candidate = Path(ref)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        if not candidate.exists():
            raise UsageError(f"plan file not found: {ref}")
        return str(candidate), _read_plan(candidate)
    if workspace is not None:
        for ext in (".yaml", ".yml"):
            local = workspace / "plans" / f"{ref}{ext}"
            if local.exists():
                return str(local), _read_plan(local)
    plans = builtin_plans()
    if ref in plans:
        return f"{ref}.yaml (built in)", plans[ref]
    known = ", ".join(plans) or "none"
    raise UsageError(f"unknown plan {ref!r}: not a file, not in plans/, not built in ({known})")


class _Collector:
    def __init__(self, located: Located) -> None:
        self.located = located
        self.errors: list[PlanError] = []

    def add(self, loc: Loc, message: str) -> None:
        error = PlanError(message, file=self.located.file, path=format_loc(loc) or None,
                          line=self.located.line_of(loc))
        if all(e.describe() != error.describe() for e in self.errors):  # foreach copies say it once
            self.errors.append(error)

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise PlanErrors(self.errors)


@dataclass
class _Parts:
    """The parts of a plan that validated: all of it when the schema passed, else what could be checked.

    Later layers (references, cycle, step parameters) run on these parts, so one load reports
    every problem rather than stopping at the first layer that has one.
    """

    tasks: list[tuple[int, TaskSpec]]
    gates: list[tuple[int, GateSpec]]
    roles: set[str] | None
    """Role names (None when the ``roles`` section is unusable: role references are not checked)."""
    params: set[str] | None
    """Names ``${...}`` may use (None when unknown: references are not checked)."""
    profiles: list[str] | None
    default_profile: str | None
    invalid_ids: set[str] = field(default_factory=set)
    """Ids of tasks and gates that failed the schema: references to them are not 'unknown'."""

    @classmethod
    def of(cls, spec: PlanSpec) -> _Parts:
        params = set(spec.params)
        for profile in spec.profiles.values():
            params |= set(profile.set)
        return cls(list(enumerate(spec.tasks)), list(enumerate(spec.gates)), set(spec.roles), params,
                   list(spec.profiles), spec.default_profile)

    @classmethod
    def salvage(cls, data: dict[str, Any]) -> _Parts:
        """Validate item by item what the whole-plan schema rejected."""
        parts = cls([], [], None, None, None, None)
        def valid(key: str, model: type[Any]) -> list[tuple[int, Any]]:
            items = data.get(key)
            out = []
            for i, item in enumerate(items if isinstance(items, list) else []):
                try:
                    out.append((i, model.model_validate(item)))
                except ValidationError:
                    if isinstance(item, dict) and isinstance(item.get("id"), str):
                        parts.invalid_ids.add(item["id"])
            return out

        parts.tasks, parts.gates = valid("tasks", TaskSpec), valid("gates", GateSpec)
        roles = data.get("roles") or {}
        parts.roles = {*DEFAULT_ROLES, *(str(r) for r in roles)} if isinstance(roles, dict) else None
        profiles = data.get("profiles", {"thorough": {}, "speed": {}})
        if isinstance(profiles, dict):
            parts.profiles = [str(p) for p in profiles]
            default = data.get("default_profile", "thorough")
            parts.default_profile = default if isinstance(default, str) else None
        params = data.get("params", {})
        if isinstance(params, dict) and isinstance(profiles, dict):
            parts.params = {str(p) for p in params}
            for profile in profiles.values():
                if isinstance(profile, dict) and isinstance(profile.get("set"), dict):
                    parts.params |= {str(p) for p in profile["set"]}
        return parts


def parse_plan(text: str, source: str, root: Path | None = None) -> tuple[PlanSpec, Located]:
    """Parse and validate a plan's text; raise :class:`PlanError` with every problem found.

    ``root`` is the workspace: ``run: module:function`` steps are imported from it first.
    """
    try:
        located = load_located(text, source)
    except ConfigError as e:
        raise PlanError(e.message, file=e.file, path=e.path, line=e.line) from None
    errors = _Collector(located)
    if not isinstance(located.data, dict):
        errors.add((), "a plan must be a YAML mapping with 'name' and 'tasks'")
        errors.raise_if_any()
    # top-level `x-…` keys hold YAML anchors for the rest of the plan (`x-defaults: &d {...}`)
    located.data = {k: v for k, v in located.data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    spec: PlanSpec | None = None
    try:
        spec = PlanSpec.model_validate(located.data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            errors.add(loc, _pydantic_message(err))
    _check_references(_Parts.of(spec) if spec is not None else _Parts.salvage(located.data), errors, root)
    errors.raise_if_any()
    assert spec is not None  # no schema error was found
    return spec, located


def _pydantic_message(err: Any) -> str:
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    return msg


def _step_spec(ref: str, root: Path | None, loc: Loc, errors: _Collector) -> StepSpec | None:
    """The step ``run:`` names, or None with the reason recorded at ``loc``."""
    try:
        return resolve_step(ref, root)
    except UnknownPlugin as e:
        errors.add(loc, str(e))
        return None


def _check_references(parts: _Parts, errors: _Collector, root: Path | None) -> None:
    task_ids: dict[str, int] = {}
    for i, task in parts.tasks:
        if task.id in task_ids:
            errors.add(("tasks", i, "id"), f"duplicate task id {task.id!r} (first at tasks[{task_ids[task.id]}])")
        else:
            task_ids[task.id] = i
    gate_ids: dict[str, int] = {}
    for g, gate in parts.gates:
        if gate.id in gate_ids or gate.id in task_ids:
            errors.add(("gates", g, "id"), f"duplicate id {gate.id!r} (gates and tasks share one namespace)")
        gate_ids.setdefault(gate.id, g)
    known_ids = set(task_ids) | parts.invalid_ids
    roles = parts.roles
    if parts.profiles is not None and parts.default_profile is not None \
            and parts.default_profile not in parts.profiles:
        errors.add(("default_profile",), f"unknown profile {parts.default_profile!r} "
                                         f"(known: {', '.join(parts.profiles)})")

    for i, task in parts.tasks:
        if roles is not None and task.role not in roles:
            errors.add(("tasks", i, "role"), f"unknown role {task.role!r} (known: {', '.join(sorted(roles))}; "
                                             "declare it under the plan's roles:, coord.yaml only rebinds roles)")
        for n, need in enumerate(task.needs):
            if need not in known_ids and need not in gate_ids:
                errors.add(("tasks", i, "needs", n), f"unknown task or gate {need!r}")
            elif need == task.id:
                errors.add(("tasks", i, "needs", n), "a task cannot need itself")
        if task.run is not None:
            step_spec = _step_spec(task.run, root, ("tasks", i, "run"), errors)
            if step_spec is not None:
                for key, value in task.with_.items():
                    if key not in step_spec.params:
                        errors.add(("tasks", i, "with", key), f"step {task.run!r} has no parameter {key!r}")
                    elif not _has_ref(value) and (problem := step_value_problem(step_spec, key, value)):
                        errors.add(("tasks", i, "with", key), problem)
                for req in step_spec.required():
                    if req not in task.with_ and not (task.foreach is not None and req == "agent"):
                        errors.add(("tasks", i, "with"), f"step {task.run!r} needs parameter {req!r}")
                for key in step_spec.path_params & set(task.with_):
                    _check_path(task.with_[key], ("tasks", i, "with", key), errors)
        for c, check in enumerate(task.accept):
            _check_check(check, ("tasks", i, "accept", c), known_ids, errors, task.accept)
    for g, gate in parts.gates:
        if roles is not None and gate.reviewer not in roles:
            errors.add(("gates", g, "reviewer"), f"unknown role {gate.reviewer!r}")
        for a, after in enumerate(gate.after):
            if after not in known_ids:
                errors.add(("gates", g, "after", a), f"gate after unknown task {after!r}")
        for b, blocked in enumerate(gate.blocks):
            if blocked not in known_ids:
                errors.add(("gates", g, "blocks", b), f"unknown task {blocked!r}")
        for c, check in enumerate(gate.criteria):
            _check_check(check, ("gates", g, "criteria", c), known_ids, errors, gate.criteria)
    _check_params(parts, errors)
    cycle = _find_cycle(parts)
    if cycle:
        first = cycle[0]
        loc: Loc = ("tasks", task_ids[first], "needs") if first in task_ids else ("gates", gate_ids[first])
        errors.add(loc, "dependency cycle: " + " → ".join(cycle))


def _has_ref(value: Any) -> bool:
    return next(refs.references(value), None) is not None


_ADAPTERS: dict[tuple[str, str], tuple[Any, TypeAdapter[Any]]] = {}


def step_value_problem(step_spec: StepSpec, key: str, value: Any) -> str | None:
    """Why ``value`` cannot be the step's parameter ``key`` (its declared type and limits), or None."""
    cache_key = (step_spec.name, key)
    if cache_key not in _ADAPTERS:
        hint = typing.get_type_hints(step_spec.fn).get(key, Any)
        _ADAPTERS[cache_key] = (hint, TypeAdapter(hint))
    hint, adapter = _ADAPTERS[cache_key]
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError as e:
        err = e.errors()[0]
        inner = ".".join(str(p) for p in err["loc"])
        return (f"step {step_spec.name!r} expects {_type_name(hint)}, got {value!r}"
                + (f" ({inner}: {err['msg'].lower()})" if inner else ""))
    limit = step_spec.limits.get(key)
    problem = limit.problem(key, value) if limit is not None else None
    return f"step {step_spec.name!r}: {problem}" if problem else None


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(
            hint.__name__, hint.__name__)
    return str(hint).replace("coordinator.core.step.WsPath", "path").replace("typing.", "")


def _check_check(check: Any, loc: Loc, task_ids: set[str], errors: _Collector,
                 siblings: list[Any]) -> None:
    if check.claims is not None:
        claims = check.claims
        commands = [c.name for c in siblings if c.command is not None]
        if claims.against not in commands:
            errors.add(loc + ("claims", "against"),
                       f"{claims.against!r} is not the id of a command check in the same list "
                       f"(command checks: {', '.join(commands) or 'none'})")
        if claims.task is not None and claims.task not in task_ids:
            errors.add(loc + ("claims", "task"), f"unknown task {claims.task!r}")
        if claims.file is not None:
            _check_path(claims.file, loc + ("claims", "file"), errors)
    if check.metric is not None and check.command is None:  # with a command, the metric is the command's
        task = check.metric.split(".", 1)[0]
        if task not in task_ids:
            errors.add(loc + ("metric",), f"metric {check.metric!r} refers to unknown task {task!r}")
    if check.file is not None:
        _check_path(check.file, loc + ("file",), errors)
    for r, res in enumerate(check.resolved_by):
        if res not in task_ids:
            errors.add(loc + ("resolved_by", r), f"unknown task {res!r}")


def _check_path(value: Any, loc: Loc, errors: _Collector) -> None:
    if value is None or (isinstance(value, str) and _has_ref(value)):
        return
    if not isinstance(value, str):
        errors.add(loc, f"expected a workspace path, got {type(value).__name__}")
        return
    if value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value):
        errors.add(loc, f"path {value!r} escapes the workspace (absolute paths are not allowed)")
        return
    norm = posixpath.normpath(value.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        errors.add(loc, f"path {value!r} escapes the workspace")


def _upstream(parts: _Parts) -> dict[str, set[str]]:
    """Task id → every task it comes after (its needs, theirs, and the tasks a needed gate reviews)."""
    needs = {t.id: set(t.needs) for _, t in parts.tasks}
    after = {g.id: set(g.after) for _, g in parts.gates}
    out: dict[str, set[str]] = {}

    def walk(node: str, seen: set[str]) -> None:
        for n in needs.get(node, set()) | after.get(node, set()):
            if n not in seen:
                seen.add(n)
                walk(n, seen)

    for tid in needs:
        seen: set[str] = set()
        walk(tid, seen)
        out[tid] = {n for n in seen if n in needs}
    return out


def _check_refs(value: Any, loc: Loc, errors: _Collector, params: set[str] | None, *,
                upstream: set[str] | None, item: bool, metrics: bool = True) -> None:
    """Every ``${…}`` in ``value`` names something that will have a value; errors at ``loc`` otherwise."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_refs(v, loc + (k,), errors, params, upstream=upstream, item=item, metrics=metrics)
        return
    if isinstance(value, list):
        for n, v in enumerate(value):
            _check_refs(v, loc + (n,), errors, params, upstream=upstream, item=item, metrics=metrics)
        return
    for ref in refs.references(value):
        if (why := refs.problem(ref)) is not None:
            errors.add(loc, why)
        elif refs.UPSTREAM.fullmatch(ref):
            task = ref.split(".", 1)[0]
            if not metrics:
                errors.add(loc, f"${{{ref}}}: a task's metric is not filled in here, only plan parameters "
                                "(task metrics reach with, instructions, command, foreach and check commands)")
            elif upstream is not None and task not in upstream:
                errors.add(loc, f"${{{ref}}}: task {task!r} is not upstream of this task (add it to needs)")
        elif ref == "item":
            if not item:
                errors.add(loc, "${item} is only defined in a task with 'foreach'")
        elif params is not None and ref not in params:
            known = ", ".join(sorted(params | ({"item"} if item else set()))) or "none"
            errors.add(loc, f"unknown parameter ${{{ref}}} (known: {known}; $${{{ref}}} for a literal)")


def _check_params(parts: _Parts, errors: _Collector) -> None:
    """References in tasks (with, instructions, foreach, command, outputs, accept checks) and gates."""
    upstream = _upstream(parts)
    for i, task in parts.tasks:
        mine = upstream.get(task.id, set())
        item = task.foreach is not None
        for key in ("with_", "instructions", "command"):
            name = "with" if key == "with_" else key
            _check_refs(getattr(task, key), ("tasks", i, name), errors, parts.params, upstream=mine, item=item)
        for key in ("outputs", "title"):  # fixed when the task is planned: parameters only
            _check_refs(getattr(task, key), ("tasks", i, key), errors, parts.params, upstream=None, item=item, metrics=False)
        _check_refs(task.foreach, ("tasks", i, "foreach"), errors, parts.params, upstream=mine, item=False)
        for c, check in enumerate(task.accept):  # an accept command reads the task's own metrics
            _check_refs(check.command, ("tasks", i, "accept", c, "command"), errors, parts.params,
                        upstream={task.id}, item=item)
            for key in ("file", "value"):
                _check_refs(getattr(check, key), ("tasks", i, "accept", c, key), errors, parts.params,
                            upstream=None, item=item, metrics=False)
    known = {t.id for _, t in parts.tasks}
    for g, gate in parts.gates:
        for c, check in enumerate(gate.criteria):
            _check_refs(check.command, ("gates", g, "criteria", c, "command"), errors, parts.params,
                        upstream=known, item=False)
            for key in ("file", "value"):
                _check_refs(getattr(check, key), ("gates", g, "criteria", c, key), errors, parts.params,
                            upstream=None, item=False, metrics=False)


def _find_cycle(parts: _Parts) -> list[str] | None:
    edges: dict[str, list[str]] = {t.id: list(t.needs) for _, t in parts.tasks}
    for _, gate in parts.gates:
        edges[gate.id] = list(gate.after)
        for blocked in gate.blocks:
            edges.setdefault(blocked, []).append(gate.id)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in edges.get(node, []):
            if state.get(dep) == 1:
                start = stack.index(dep)
                return [*stack[start:], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state and (found := visit(node)):
            return list(reversed(found))
    return None


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """Fill in ``${name}`` plan parameters; ``${task.metric}`` and ``$${…}`` stay for when the task starts.
    A string that is exactly one reference keeps the value's type."""
    return refs.fill(value, lambda ref: params.get(ref, refs.MISSING))


def _param_lookup(params: dict[str, Any]) -> refs.Lookup:
    return lambda ref: params.get(ref, refs.MISSING)


def parse_override(raw: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``; the value is read as a YAML scalar or list."""
    if "=" not in raw:
        raise UsageError(f"--set expects key=value, got {raw!r}")
    key, _, text = raw.partition("=")
    key = key.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise UsageError(f"--set: invalid parameter name {key!r}")
    try:
        value = load_located(text, "--set").data
    except ConfigError as e:
        raise UsageError(f"--set {key}: {e.message}") from None
    return key, value if value is not None else ""


def _origin(raw: Any, overrides: dict[str, Any], profile: str, profile_set: dict[str, Any]) -> str:
    """Where a substituted value came from, for an error message."""
    names = [r for r in refs.references(raw) if refs.PARAM.fullmatch(r)] if isinstance(raw, str) else []
    if not names:
        return ""
    name = names[0]
    if name in overrides:
        return f" (the value of ${{{name}}}, from --set {name})"
    if name in profile_set:
        return f" (the value of ${{{name}}}, from profile {profile!r})"
    return f" (the value of ${{{name}}} in params)"


def compile_plan(spec: PlanSpec, located: Located, text: str, *, profile: str | None = None,
                 overrides: dict[str, Any] | None = None, root: Path | None = None) -> CompiledPlan:
    """Expand foreach, substitute parameters, apply the profile; raise on what only shows now."""
    errors = _Collector(located)
    profile_name = profile or spec.default_profile
    if profile_name not in spec.profiles:
        raise UsageError(f"unknown profile {profile_name!r} for plan {spec.name!r} "
                         f"(known: {', '.join(spec.profiles)})")
    prof = spec.profiles[profile_name]
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(spec.params) - set(prof.set))
    if unknown:
        raise UsageError(f"--set: plan {spec.name!r} has no parameter {', '.join(map(repr, unknown))} "
                         f"(parameters: {', '.join(sorted(spec.params))})")
    params = {**spec.params, **prof.set, **overrides}

    expansions: dict[str, list[tuple[str, Any]]] = {}
    fanouts: dict[str, str] = {}
    for i, task in enumerate(spec.tasks):
        if task.foreach is None:
            expansions[task.id] = [(task.id, None)]
            continue
        items = substitute(task.foreach, params)
        if isinstance(items, str) and (ref := _upstream_ref(items)) is not None:
            expansions[task.id] = [(task.id, None)]  # fans out when the run reaches it
            fanouts[task.id] = ref
            continue
        if not isinstance(items, list) or not items:
            errors.add(("tasks", i, "foreach"), f"foreach must give a non-empty list, got {items!r}")
            continue
        expansions[task.id] = [(f"{task.id}[{item}]", item) for item in items]
    errors.raise_if_any()

    spec_gates = {g.id for g in spec.gates}
    tasks: dict[str, CompiledTask] = {}
    for i, task in enumerate(spec.tasks):
        for tid, item in expansions[task.id]:
            scope = params if task.id in fanouts else {**params, "item": item}
            with_ = substitute(task.with_, scope)
            step_spec = resolve_step(task.run, root) if task.run is not None else None
            if step_spec is not None and item is not None and "agent" in step_spec.params \
                    and "agent" not in with_:
                with_["agent"] = item
            if step_spec is not None:
                for key in step_spec.path_params & set(with_):
                    _check_path(with_[key], ("tasks", i, "with", key), errors)
                for key, value in with_.items():
                    if task.id in fanouts and _has_ref(value):
                        continue  # filled in per item when the task fans out
                    if key in step_spec.params and (problem := step_value_problem(step_spec, key, value)):
                        errors.add(("tasks", i, "with", key),
                                   problem + _origin(task.with_.get(key), overrides, profile_name, prof.set))
            needs: list[str] = []
            for need in task.needs:
                if need in spec_gates:
                    needs.append(need)
                    continue
                exp = expansions[need]
                paired = [t for t, it in exp if item is not None and it == item]
                needs.extend(paired if paired and len(exp) == len(expansions[task.id]) else [t for t, _ in exp])
            tasks[tid] = CompiledTask(
                id=tid, base_id=task.id, item=item, title=substitute(task.title, scope), role=task.role,
                needs=needs, run=task.run, params=with_,
                instructions=substitute(task.instructions, scope) if task.instructions else None,
                command=refs.fill_command(task.command, _param_lookup(scope)) if task.command is not None else None,
                outputs=[str(substitute(o, scope)) for o in task.outputs],
                accept=[_filled_check(c, scope) for c in task.accept], optional=task.optional,
                skip=task.optional and prof.skip_optional, retries=task.retries,
                retry_backoff=task.retry_backoff, timeout=task.timeout, fanout=fanouts.get(task.id))
    errors.raise_if_any()

    gate_after: dict[str, list[str]] = {}
    gates = {}
    for g, gate in enumerate(spec.gates):
        filled = [_filled_check(c, params) for c in gate.criteria]
        for c, (raw, check) in enumerate(zip(gate.criteria, filled, strict=True)):
            if check.op in ORDERING_OPS and check.value is not None and not _is_number(check.value):
                errors.add(("gates", g, "criteria", c, "value"),
                           f"{check.op} compares numbers, got {check.value!r}"
                           + _origin(raw.value, overrides, profile_name, prof.set))
        gates[gate.id] = gate.model_copy(update={"criteria": filled})
        gate_after[gate.id] = [t for a in gate.after for t, _ in expansions[a]]
        for blocked in gate.blocks:
            for tid, _ in expansions[blocked]:
                tasks[tid].blocked_by.append(gate.id)

    errors.raise_if_any()
    order = _topo_order(tasks)
    digest = hashlib.sha256(text.encode() + repr(sorted(params.items())).encode()
                            + profile_name.encode()).hexdigest()
    return CompiledPlan(name=spec.name, title=spec.title or spec.name, source=located.file,
                        sha256=digest, profile=profile_name, params=params, roles=spec.roles,
                        tasks=tasks, order=order, gates=gates,
                        gate_after=gate_after, budget=spec.budget, grading=spec.grading)


ORDERING_OPS = frozenset({"<", "<=", ">", ">="})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _filled_check(check: Check, scope: dict[str, Any]) -> Check:
    """A check with plan parameters filled in (shell-quoted in its command)."""
    lookup = _param_lookup(scope)
    update: dict[str, Any] = {"value": refs.fill(check.value, lookup)}
    if check.command is not None:
        update["command"] = refs.fill_command(check.command, lookup)
    if check.file is not None:
        update["file"] = refs.fill(check.file, lookup)
    return check.model_copy(update=update)


def _upstream_ref(text: str) -> str | None:
    """``pilot.shards`` when ``text`` is exactly ``${pilot.shards}``."""
    found = list(refs.references(text))
    if len(found) == 1 and text.strip() == "${" + found[0] + "}" and refs.UPSTREAM.fullmatch(found[0]):
        return found[0]
    return None


def fan_out(plan: CompiledPlan, task_id: str, items: Any) -> CompiledPlan:
    """The plan with the run-time ``foreach`` task ``task_id`` replaced by one task per item.

    Each copy has ``${item}`` filled in; tasks that needed the template need every copy; gates
    after it review every copy; the order is recomputed. Raises ValueError on unusable items.
    """
    if not isinstance(items, list) or not items \
            or not all(isinstance(i, str | int) and not isinstance(i, bool) for i in items):
        raise ValueError(f"foreach ${{{plan.tasks[task_id].fanout}}} must give a non-empty list of names or "
                         f"numbers, got {items!r}")
    if len({str(i) for i in items}) != len(items):
        raise ValueError(f"foreach ${{{plan.tasks[task_id].fanout}}} lists an item twice: {items!r}")
    template = plan.tasks[task_id]
    copies: dict[str, CompiledTask] = {}
    for item in items:
        lookup = _param_lookup({"item": item})
        cid = f"{task_id}[{item}]"
        copies[cid] = template.model_copy(update={
            "id": cid, "item": item, "fanout": None, "title": refs.fill(template.title, lookup),
            "params": refs.fill(template.params, lookup),
            "instructions": refs.fill(template.instructions, lookup) if template.instructions else None,
            "command": refs.fill_command(template.command, lookup) if template.command is not None else None,
            "outputs": [str(refs.fill(o, lookup)) for o in template.outputs],
            "accept": [_filled_check(c, {"item": item}) for c in template.accept],
            "blocked_by": list(template.blocked_by)}, deep=True)
    tasks: dict[str, CompiledTask] = {}
    for tid, task in plan.tasks.items():
        if tid == task_id:
            tasks.update(copies)
        elif task_id in task.needs:
            tasks[tid] = task.model_copy(update={"needs": [n for need in task.needs
                                                           for n in (list(copies) if need == task_id else [need])]})
        else:
            tasks[tid] = task
    gate_after = {g: [t for a in after for t in (list(copies) if a == task_id else [a])]
                  for g, after in plan.gate_after.items()}
    return plan.model_copy(update={"tasks": tasks, "gate_after": gate_after, "order": _topo_order(tasks)})


def _topo_order(tasks: dict[str, CompiledTask]) -> list[str]:
    remaining = {t: {n for n in c.needs if n in tasks} for t, c in tasks.items()}
    order: list[str] = []
    while remaining:
        ready = [t for t in tasks if t in remaining and not remaining[t]]
        if not ready:  # validated earlier; defensive
            raise PlanError("dependency cycle among: " + ", ".join(remaining))
        for t in ready:
            order.append(t)
            del remaining[t]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def load_plan(ref: str, *, workspace: Path | None = None, profile: str | None = None,
              overrides: dict[str, Any] | None = None) -> CompiledPlan:
    """Find, parse, validate and compile a plan in one call."""
    source, text = find_plan(ref, workspace)
    spec, located = parse_plan(text, source, workspace)
    return compile_plan(spec, located, text, profile=profile, overrides=overrides, root=workspace)


def load_spec(ref: str, *, workspace: Path | None = None) -> PlanSpec:
    """Find, parse and validate a plan without compiling it."""
    source, text = find_plan(ref, workspace)
    return parse_plan(text, source, workspace)[0]


__all__ = ["builtin_plans", "compile_plan", "find_plan", "load_file", "load_plan", "load_spec",
           "parse_override", "parse_plan", "substitute"]
