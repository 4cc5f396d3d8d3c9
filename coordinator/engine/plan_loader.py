"""Load, validate and compile plans.

Every problem is reported with the file, the line and the path inside the
plan (``tasks[3].needs[0]``); all problems found are reported together.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from coordinator.core import refs
from coordinator.core.errors import ConfigError, PlanError, UsageError
from coordinator.core.plan import (
    Check,
    CompiledPlan,
    CompiledTask,
    PlanSpec,
    Profile,
)
from coordinator.core.registry import UnknownPlugin
from coordinator.core.step import StepSpec, resolve_step
from coordinator.core.yaml_io import (
    Located,
    load_file,
    load_located,
    read_yaml_text,
)
from coordinator.engine.plan_checks import (
    Collector,
    Parts,
    check_path,
    check_references,
    has_ref,
    pydantic_message,
    step_value_problem,
    union_loc,
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
    if candidate.suffix in {".yaml", ".yml"} or (candidate.exists() and not candidate.is_dir()):
        if not candidate.exists():
            raise UsageError(f"plan file not found: {ref}")
        if candidate.is_dir():
            raise UsageError(f"{ref} is a directory, not a plan file")
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
    what = "a directory" if candidate.is_dir() else "not a file"
    raise UsageError(f"unknown plan {ref!r}: {what}, not in plans/, not built in ({known})")




def _one_message(messages: list[str]) -> str:
    """``Input should be a valid list`` and ``… a valid string`` as ``Input should be a valid list or a valid
    string``; distinct messages joined."""
    unique = list(dict.fromkeys(messages))
    head = "Input should be "
    if len(unique) > 1 and all(m.startswith(head) for m in unique):
        return head + " or ".join(m.removeprefix(head) for m in unique)
    return "; ".join(unique)


def parse_plan(text: str, source: str, root: Path | None = None) -> tuple[PlanSpec, Located]:
    """Parse and validate a plan's text; raise :class:`PlanError` with every problem found.

    ``root`` is the workspace: ``run: module:function`` steps are imported from it first.
    """
    spec, located, _, errors = _parse(text, source, root)
    errors.raise_if_any()
    assert spec is not None  # no schema error was found
    return spec, located


def _parse(text: str, source: str, root: Path | None) -> tuple[PlanSpec | None, Located, Parts, Collector]:
    """The plan (None when its schema fails), its parts and every problem found, without raising for them."""
    try:
        located = load_located(text, source)
    except ConfigError as e:
        raise PlanError(e.message, file=e.file, path=e.path, line=e.line) from None
    errors = Collector(located)
    if not isinstance(located.data, dict):
        errors.add((), "a plan must be a YAML mapping with 'name' and 'tasks'")
        errors.raise_if_any()
    # top-level `x-…` keys hold YAML anchors for the rest of the plan (`x-defaults: &d {...}`)
    located.data = {k: v for k, v in located.data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    spec: PlanSpec | None = None
    try:
        spec = PlanSpec.model_validate(located.data)
    except ValidationError as e:
        by_loc: dict[tuple[Any, ...], list[str]] = {}
        for err in e.errors():  # the branches of a union fail at one place: one message for it
            by_loc.setdefault(union_loc(tuple(err["loc"])), []).append(pydantic_message(err))
        for loc, messages in by_loc.items():
            errors.add(loc, _one_message(messages))
    parts = Parts.of(spec) if spec is not None else Parts.salvage(located.data)
    check_references(parts, errors, root)
    return spec, located, parts, errors


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


def _check_selection(plan: str, params: set[str] | None, profiles: list[str] | None, profile: str | None,
                     overrides: dict[str, Any], errors: Collector) -> list[str]:
    """Record an unknown ``--profile`` and ``--set`` names the plan does not declare; return those names."""
    if profiles is not None and profile is not None and profile not in profiles:
        errors.add_usage(f"unknown profile {profile!r} for plan {plan!r} (known: {', '.join(profiles)})")
    unknown = sorted(set(overrides) - params) if params is not None else []
    if unknown:
        errors.add_usage(f"--set: plan {plan!r} has no parameter {', '.join(map(repr, unknown))} "
                         f"(parameters: {', '.join(sorted(params or ()))})")
    return unknown


def compile_plan(spec: PlanSpec, located: Located, text: str, *, profile: str | None = None,
                 overrides: dict[str, Any] | None = None, root: Path | None = None,
                 errors: Collector | None = None) -> CompiledPlan:
    """Expand foreach, substitute parameters, apply the profile; raise on what only shows now.

    ``errors``: problems found while parsing, reported with these in one batch; compiling goes
    as far as it can around them (an unknown need, step or role is left out, not a crash).
    """
    errors = errors if errors is not None else Collector(located)
    profile_name = profile or spec.default_profile
    overrides = dict(overrides or {})
    prof = spec.profiles.get(profile_name) or Profile()  # an unknown one is reported; compiling goes on
    unknown = _check_selection(spec.name, set(spec.params) | set(prof.set), list(spec.profiles), profile,
                               overrides, errors)  # (a default that is not a profile is the plan's own error)
    params = {**spec.params, **prof.set, **{k: v for k, v in overrides.items() if k not in unknown}}

    expansions: dict[str, list[tuple[str, Any]]] = {}
    fanouts: dict[str, str] = {}
    no_items: set[str] = set()
    for i, task in enumerate(spec.tasks):
        if task.foreach is None:
            expansions[task.id] = [(task.id, None)]
            continue
        items = substitute(task.foreach, params)
        if isinstance(items, str) and (ref := _upstream_ref(items)) is not None:
            expansions[task.id] = [(task.id, None)]  # fans out when the run reaches it
            fanouts[task.id] = ref
            continue
        problem = foreach_problem(items)
        if problem:
            errors.add(("tasks", i, "foreach"), f"foreach {problem}")
            expansions[task.id] = [(task.id, None)]  # compiled as one task, so later checks still run
            no_items.add(task.id)  # … but not on ${item}, which has no value
            continue
        expansions[task.id] = [(f"{task.id}[{item}]", item) for item in items]

    spec_gates = {g.id for g in spec.gates}
    tasks: dict[str, CompiledTask] = {}
    for i, task in enumerate(spec.tasks):
        for tid, item in expansions[task.id]:
            scope = params if task.id in fanouts else {**params, "item": item}
            with_ = substitute(task.with_, scope)
            step_spec = _step_or_none(task.run, root)
            if step_spec is not None and item is not None and "agent" in step_spec.params \
                    and "agent" not in with_:
                with_["agent"] = item
            if step_spec is not None:
                for key in step_spec.path_params & set(with_):
                    check_path(with_[key], ("tasks", i, "with", key), errors)
                for key, value in with_.items():
                    if (task.id in fanouts and has_ref(value)) or (task.id in no_items and has_ref(task.with_.get(key))):
                        continue  # filled in per item when the task fans out (or its foreach is the error)
                    if key in step_spec.params and (problem := step_value_problem(step_spec, key, value, with_)):
                        errors.add(("tasks", i, "with", key),
                                   problem + _origin(task.with_.get(key), overrides, profile_name, prof.set))
            needs: list[str] = []
            for need in task.needs:
                if need in spec_gates:
                    needs.append(need)
                    continue
                if need not in expansions:
                    continue  # reported as an unknown task or gate
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
                retry_backoff=task.retry_backoff, timeout=task.timeout, fanout=fanouts.get(task.id),
                requires=list(task.requires))

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
        gate_after[gate.id] = [t for a in gate.after for t, _ in expansions.get(a, [])]
        for blocked in gate.blocks:
            for tid, _ in expansions.get(blocked, []):
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


FOREACH_ITEM_MAX = 100
"""Characters in one ``foreach`` item (it becomes part of a task id, on boards and in file names)."""


def foreach_problem(items: Any) -> str | None:
    """Why ``items`` cannot be a ``foreach`` list (completing "foreach …"), or None.

    Items are names or numbers, each once (as text: ``1`` and ``"1"`` are the same copy), on one line,
    without the brackets and HTML comment marks that delimit task ids on the boards."""
    if not isinstance(items, list) or not items:
        return f"must give a non-empty list of names or numbers, got {items!r}"
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            return f"must give a non-empty list of names or numbers, got {item!r} ({type(item).__name__}) among them"
        text = str(item)
        if not text.strip() or len(text) > FOREACH_ITEM_MAX:
            return f"item {text!r}: a name of 1 to {FOREACH_ITEM_MAX} characters"
        if any(not c.isprintable() for c in text) or any(m in text for m in ("[", "]", "<!--", "-->", "`")):
            return (f"item {text!r}: an item is one line without control characters, brackets, backquotes or "
                    "HTML comment marks (it becomes part of the task's id)")
    seen: set[str] = set()
    for item in items:
        if str(item) in seen:
            return f"lists the item {str(item)!r} twice (each item is one copy of the task)"
        seen.add(str(item))
    return None


def fan_out(plan: CompiledPlan, task_id: str, items: Any) -> CompiledPlan:
    """The plan with the run-time ``foreach`` task ``task_id`` replaced by one task per item.

    Each copy has ``${item}`` filled in; tasks that needed the template need every copy; gates
    after it review every copy; the order is recomputed. Raises ValueError on unusable items.
    """
    problem = foreach_problem(items)
    if problem:
        raise ValueError(f"foreach ${{{plan.tasks[task_id].fanout}}} {problem}")
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
    """Tasks in layers — those with no needs, then those whose needs are all in earlier layers,
    … — each layer in declaration order. Linear in tasks and needs (a 10,000-task chain loads)."""
    index = {t: i for i, t in enumerate(tasks)}
    waiting = {t: len({n for n in c.needs if n in tasks}) for t, c in tasks.items()}
    dependents: dict[str, list[str]] = {t: [] for t in tasks}
    for t, c in tasks.items():
        for n in {n for n in c.needs if n in tasks}:
            dependents[n].append(t)
    layer = [t for t in tasks if waiting[t] == 0]
    order: list[str] = []
    while layer:
        order += layer
        following = []
        for t in layer:
            for d in dependents[t]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    following.append(d)
        layer = sorted(following, key=index.__getitem__)
    if len(order) < len(tasks):  # validated earlier; defensive
        raise PlanError("dependency cycle among: " + ", ".join(t for t in tasks if waiting[t]))
    return order


def _step_or_none(ref: str | None, root: Path | None) -> StepSpec | None:
    """The step ``run:`` names; None for no step, or for one already reported as unknown."""
    if ref is None:
        return None
    try:
        return resolve_step(ref, root)
    except UnknownPlugin:
        return None


def load_plan(ref: str, *, workspace: Path | None = None, profile: str | None = None,
              overrides: dict[str, Any] | None = None) -> CompiledPlan:
    """Find, parse, validate and compile a plan in one call; every problem, with ``--set`` and
    ``--profile`` ones, in one :class:`PlanError`."""
    source, text = find_plan(ref, workspace)
    spec, located, parts, errors = _parse(text, source, workspace)
    if spec is None:  # nothing to compile: what the command line asked is checked against what parsed
        name = located.data.get("name") if isinstance(located.data, dict) else None
        _check_selection(str(name or source), parts.params, parts.profiles, profile, dict(overrides or {}), errors)
        errors.raise_if_any()
    assert spec is not None
    return compile_plan(spec, located, text, profile=profile, overrides=overrides, root=workspace, errors=errors)


def load_spec(ref: str, *, workspace: Path | None = None) -> PlanSpec:
    """Find, parse and validate a plan without compiling it."""
    source, text = find_plan(ref, workspace)
    return parse_plan(text, source, workspace)[0]


__all__ = ["builtin_plans", "compile_plan", "find_plan", "load_file", "load_plan", "load_spec",
           "parse_override", "parse_plan", "substitute"]
