"""What a plan must satisfy beyond its schema, checked all at once so every problem is reported together.

References between tasks and gates, step parameters against their signatures and limits,
``${…}`` references, workspace paths and dependency cycles. :class:`Collector` gathers the
problems with their ``file:line → path``; :class:`Parts` is what of a plan could be checked.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from coordinator.core import refs
from coordinator.core.errors import PlanError, PlanErrors
from coordinator.core.plan import (
    DEFAULT_ROLES,
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
)


class Collector:
    def __init__(self, located: Located) -> None:
        self.located = located
        self.errors: list[PlanError] = []

    def add(self, loc: Loc, message: str) -> None:
        error = PlanError(message, file=self.located.file, path=format_loc(loc) or None,
                          line=self.located.line_of(loc))
        if all(e.describe() != error.describe() for e in self.errors):  # foreach copies say it once
            self.errors.append(error)

    def add_usage(self, message: str) -> None:
        """A problem with what the command line asked of the plan (``--set``, ``--profile``): no place in the file."""
        if all(e.describe() != message for e in self.errors):
            self.errors.append(PlanError(message))

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise PlanErrors(self.errors)


@dataclass
class Parts:
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
    declared: set[str] | None = None
    """The names under ``params:`` (what a profile's ``set`` may override)."""
    profile_sets: list[tuple[str, str]] = field(default_factory=list)
    """(profile, parameter) of every ``set`` entry."""
    raw_tasks: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """Tasks that failed the schema, as written: their references are still checked."""
    raw_gates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """Gates that failed the schema, as written: likewise."""

    @classmethod
    def of(cls, spec: PlanSpec) -> Parts:
        params = set(spec.params)
        for profile in spec.profiles.values():
            params |= set(profile.set)
        return cls(list(enumerate(spec.tasks)), list(enumerate(spec.gates)), set(spec.roles), params,
                   list(spec.profiles), spec.default_profile, declared=set(spec.params),
                   profile_sets=[(name, key) for name, p in spec.profiles.items() for key in p.set])

    @classmethod
    def salvage(cls, data: dict[str, Any]) -> Parts:
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
                    if key == "tasks" and isinstance(item, dict):
                        parts.raw_tasks.append((i, item))
                    if key == "gates" and isinstance(item, dict):
                        parts.raw_gates.append((i, item))
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
            parts.declared = set(parts.params)
            for name, profile in profiles.items():
                if isinstance(profile, dict) and isinstance(profile.get("set"), dict):
                    parts.params |= {str(p) for p in profile["set"]}
                    parts.profile_sets += [(str(name), str(p)) for p in profile["set"]]
        return parts


def pydantic_message(err: Any) -> str:
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping (key: value pairs), got {_yaml_kind(err.get('input'))}"
    return msg


def _yaml_kind(value: Any) -> str:
    """What a YAML value is, in YAML's words."""
    if isinstance(value, bool):
        return f"true/false ({value!r})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"text ({value!r})"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else type(value).__name__


def union_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A validation error's location without the names pydantic gives the branches of a union
    (``foreach.list[any]``, ``foreach.str``) or its validator functions."""
    return tuple(p for p in loc if not (isinstance(p, str) and (
        p.startswith(("function-", "list[", "dict[", "tuple[", "set[")) or p in ("str", "int", "float", "bool", "any",
                                                                                  "none", "literal", "list", "dict"))))


def step_spec_at(ref: str, root: Path | None, loc: Loc, errors: Collector) -> StepSpec | None:
    """The step ``run:`` names, or None with the reason recorded at ``loc``."""
    try:
        return resolve_step(ref, root)
    except UnknownPlugin as e:
        errors.add(loc, str(e))
        return None


def check_references(parts: Parts, errors: Collector, root: Path | None) -> None:
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
        if ("default_profile",) in errors.located.lines:
            errors.add(("default_profile",), f"unknown profile {parts.default_profile!r} "
                                             f"(known: {', '.join(parts.profiles)})")
        else:  # the user declared profiles; the default's name is coord's
            errors.add(("profiles",), f"no profile is named {parts.default_profile!r}, the default one: name "
                                      f"the default with default_profile: (one of {', '.join(parts.profiles)})")
    for profile, key in parts.profile_sets:
        if parts.declared is not None and key not in parts.declared:
            close = difflib.get_close_matches(key, sorted(parts.declared), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else " (declare it under params: with its default)"
            errors.add(("profiles", profile, "set", key),
                       f"profile {profile!r} sets {key!r}, which is not one of the plan's params{hint}")

    for i, raw in parts.raw_tasks:  # what the schema rejected in a task hides nothing else in it
        role, needs, outputs = raw.get("role"), raw.get("needs"), raw.get("outputs")
        if roles is not None and isinstance(role, str) and role not in roles:
            errors.add(("tasks", i, "role"), f"unknown role {role!r} (known: {', '.join(sorted(roles))}; "
                                             "declare it under the plan's roles:, coord.yaml only rebinds roles)")
        for n, need in enumerate(needs if isinstance(needs, list) else []):
            if isinstance(need, str) and need not in known_ids and need not in gate_ids:
                errors.add(("tasks", i, "needs", n), f"unknown task or gate {need!r}")
        for o, output in enumerate(outputs if isinstance(outputs, list) else []):
            if isinstance(output, str):
                check_path(output, ("tasks", i, "outputs", o), errors)
    for g, raw in parts.raw_gates:
        _check_raw_gate(g, raw, known_ids, errors)
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
            step_spec = step_spec_at(task.run, root, ("tasks", i, "run"), errors)
            if step_spec is not None:
                for key, value in task.with_.items():
                    if key not in step_spec.params:
                        errors.add(("tasks", i, "with", key), f"step {task.run!r} has no parameter {key!r}")
                    elif not has_ref(value) and not _reads_a_ref(step_spec, key, task.with_) and \
                            (problem := step_value_problem(step_spec, key, value, task.with_)):
                        errors.add(("tasks", i, "with", key), problem)
                for req in step_spec.required():
                    if req not in task.with_ and not (task.foreach is not None and req == "agent"):
                        errors.add(("tasks", i, "with"), f"step {task.run!r} needs parameter {req!r}")
                for key in step_spec.path_params & set(task.with_):
                    check_path(task.with_[key], ("tasks", i, "with", key), errors)
        for o, output in enumerate(task.outputs):
            check_path(output, ("tasks", i, "outputs", o), errors)
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
    cycle = find_cycle(parts)
    if cycle:
        first = cycle[0]
        loc: Loc = ("tasks", task_ids[first], "needs") if first in task_ids else ("gates", gate_ids[first])
        errors.add(loc, "dependency cycle: " + " → ".join(cycle))


def has_ref(value: Any) -> bool:
    return next(refs.references(value), None) is not None


def _reads_a_ref(step_spec: StepSpec, key: str, with_: Mapping[str, Any]) -> bool:
    """True when the limit of ``key`` reads another parameter that is still a ``${…}`` reference (it is
    checked once the reference is filled in)."""
    limit = step_spec.limits.get(key)
    return bool(limit and limit.choices_from and has_ref(with_.get(limit.choices_from)))


_ADAPTERS: dict[tuple[str, str], tuple[Any, TypeAdapter[Any]]] = {}


def step_value_problem(step_spec: StepSpec, key: str, value: Any, params: Mapping[str, Any] | None = None,
                       ) -> str | None:
    """Why ``value`` cannot be the step's parameter ``key`` (its declared type and limits; ``params``: the
    task's other parameters, which a limit may read), or None."""
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
        quote = (" (YAML reads it as a number or true/false: quote it, '…', to pass text)"
                 if isinstance(value, int | float | bool) and _type_name(hint) == "a string" else "")
        return (f"step {step_spec.name!r} expects {_type_name(hint)}, got {value!r}"
                + (f" ({inner}: {err['msg'].lower()})" if inner else "") + quote)
    limit = step_spec.limits.get(key)
    problem = limit.problem(key, value, step_spec.defaults() | dict(params or {})) if limit is not None else None
    return f"step {step_spec.name!r}: {problem}" if problem else None


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(
            hint.__name__, hint.__name__)
    return str(hint).replace("coordinator.core.step.WsPath", "path").replace("typing.", "")


def _check_check(check: Any, loc: Loc, task_ids: set[str], errors: Collector,
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
            check_path(claims.file, loc + ("claims", "file"), errors)
    if check.metric is not None and check.command is None:  # with a command, the metric is the command's
        task = check.metric.split(".", 1)[0]
        if task not in task_ids:
            errors.add(loc + ("metric",), f"metric {check.metric!r} refers to unknown task {task!r}")
    if check.file is not None:
        check_path(check.file, loc + ("file",), errors)
    for r, res in enumerate(check.resolved_by):
        if res not in task_ids:
            errors.add(loc + ("resolved_by", r), f"unknown task {res!r}")


def _check_raw_gate(g: int, raw: dict[str, Any], known_ids: set[str], errors: Collector) -> None:
    """The references of a gate the schema rejected, as far as they can be read."""
    def names(value: Any) -> list[tuple[int, str]]:
        return [(n, v) for n, v in enumerate(value if isinstance(value, list) else []) if isinstance(v, str)]

    for field_name in ("after", "blocks"):
        for n, ref in names(raw.get(field_name)):
            if ref not in known_ids:
                errors.add(("gates", g, field_name, n), f"unknown task {ref!r}")
    criteria = raw.get("criteria")
    for c, crit in enumerate(criteria if isinstance(criteria, list) else []):
        if not isinstance(crit, dict):
            continue
        if isinstance(crit.get("file"), str):
            check_path(crit["file"], ("gates", g, "criteria", c, "file"), errors)
        for n, ref in names(crit.get("resolved_by")):
            if ref not in known_ids:
                errors.add(("gates", g, "criteria", c, "resolved_by", n), f"unknown task {ref!r}")


def check_path(value: Any, loc: Loc, errors: Collector) -> None:
    if value is None or (isinstance(value, str) and has_ref(value)):
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


class _Upstream:
    """What a task comes after (its needs, theirs, and the tasks a needed gate reviews), found only
    for a task that refers to an upstream metric, without recursion (a chain of 10,000 tasks loads)."""

    def __init__(self, parts: Parts) -> None:
        self.needs = {t.id: set(t.needs) for _, t in parts.tasks}
        self.after = {g.id: set(g.after) for _, g in parts.gates}
        self.cache: dict[str, set[str]] = {}

    def of(self, tid: str) -> set[str]:
        if tid not in self.cache:
            seen: set[str] = set()
            stack = [tid]
            while stack:
                node = stack.pop()
                for n in self.needs.get(node, set()) | self.after.get(node, set()):
                    if n not in seen:
                        seen.add(n)
                        stack.append(n)
            self.cache[tid] = {n for n in seen if n in self.needs}
        return self.cache[tid]


class _UpstreamOf:
    """The set-like view ``_check_refs`` asks ``task in upstream`` of; computed on first use."""

    def __init__(self, graph: _Upstream, tid: str) -> None:
        self.graph, self.tid = graph, tid

    def __contains__(self, task: object) -> bool:
        return task in self.graph.of(self.tid)


def _check_refs(value: Any, loc: Loc, errors: Collector, params: set[str] | None, *,
                upstream: set[str] | _UpstreamOf | None, item: bool, metrics: bool = True) -> None:
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


def _check_params(parts: Parts, errors: Collector) -> None:
    """References in tasks (with, instructions, foreach, command, outputs, accept checks) and gates."""
    upstream = _Upstream(parts)
    for i, task in parts.tasks:
        mine = _UpstreamOf(upstream, task.id)
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


def find_cycle(parts: Parts) -> list[str] | None:
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
