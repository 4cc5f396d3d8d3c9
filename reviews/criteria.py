"""Measure checks: metric comparisons, files, commands and agents' claims, never an agent's word."""

from __future__ import annotations

import json
import math
import operator
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from coordinator.core import refs
from coordinator.core.command_env import command_env
from coordinator.core.plan import Check
from coordinator.core.ports import VALIDATORS
from coordinator.core.state import CriterionResult, ModelReview
from reviews.claims import Measured, compare, parse_claims
from reviews.llm_review import review_result
from templates import fmt_num

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
    "==": operator.eq, "!=": operator.ne,
}

class Instances(list[tuple[str, Any]]):
    """A fanned-out task's metric: (copy id, value) of every copy (a metric that is itself a list is not one)."""


MetricLookup = Callable[[str], tuple[Any, str | None]]
"""``task.metric`` → (value, problem); value None with a problem when it cannot be measured."""


def metric_lookup(task_metrics: Mapping[str, Mapping[str, Any]], expansions: Mapping[str, list[str]]) -> MetricLookup:
    """Look metrics up by ``task.metric``; a fanned-out task (``finetune``) reports its worst instance."""

    def lookup(ref: str) -> tuple[Any, str | None]:
        task, _, name = ref.partition(".")
        ids = expansions.get(task, [task])
        values = []
        for tid in ids:
            metrics = task_metrics.get(tid)
            if metrics is None:
                return None, f"task {tid!r} has not produced metrics"
            if name not in metrics:
                return None, f"task {tid!r} did not measure {name!r}"
            values.append((tid, metrics[name]))
        if len(values) == 1:
            return values[0][1], None
        return Instances(values), None

    return lookup


def _compare(measured: Any, op: str, threshold: Any) -> bool:
    if measured is None:
        return False
    if isinstance(measured, float) and math.isnan(measured):
        return False
    try:
        return bool(_OPS[op](measured, threshold))
    except TypeError:
        return False


TaskText = Callable[[str], str]
"""Task id → what the task reported in words: its notes and the text of its output files."""


def evaluate(check: Check, lookup: MetricLookup, workspace: Path, *, deferrable: bool = True,
             command_timeout: float = 600.0, task_text: TaskText | None = None,
             commands: Mapping[str, Measured] | None = None,
             model_review: ModelReview | None = None) -> CriterionResult:
    """Measure one check (a claims check needs its command check's measurement in ``commands``,
    a review check the reviewer model's answer in ``model_review``)."""
    base: dict[str, Any] = {"name": check.name, "label": check.describe(), "critical": check.critical,
                            "weight": check.weight, "op": None, "threshold": None, "detail": None}
    detail: str | None
    if check.metric is not None and check.command is None:
        measured, problem = lookup(check.metric)
        if isinstance(measured, Instances):  # fanned-out task: every instance must pass
            failing = [(tid, v) for tid, v in measured if not _compare(v, check.op, check.value)]
            passed = not failing
            if failing:
                detail = "fails for " + ", ".join(f"{t}={fmt_num(v)}" for t, v in failing)
                shown = failing[0][1]
            else:  # the copy closest to failing is the one the verdict rests on
                tid, shown = _binding(measured, check.op)
                detail = f"passes for all {len(measured)} instances (closest: {tid}={fmt_num(shown)})"
        elif isinstance(measured, list | dict):  # a list metric: no one value to compare
            passed, shown = False, None
            detail = (f"{check.metric} is a list ({len(measured)} items), not one number or string: "
                      f"{check.op} {check.value!r} cannot compare it")
        else:
            passed = problem is None and _compare(measured, check.op, check.value)
            detail, shown = problem, measured
            if problem is None and measured is None:
                detail = f"{check.metric} was reported as null (no value to compare)"
        result = {**base, "kind": "metric", "target": check.metric, "op": check.op,
                  "threshold": check.value, "measured": shown, "passed": passed, "detail": detail}
    elif check.file is not None:
        passed, detail = check_file(workspace, check.file, check.validator)
        result = {**base, "kind": "file", "target": check.file, "measured": passed, "passed": passed,
                  "detail": detail, "threshold": check.validator}
    elif check.command is not None:
        command, unfilled = _filled(check.command, lookup)
        if unfilled:
            result = {**base, "kind": "command", "target": check.command, "measured": None, "passed": False,
                      "detail": unfilled, "threshold": "exit 0"}
        else:
            result = {**base, **_command_result(check, command, workspace, command_timeout)}
    elif check.review is not None:
        result = {**base, **review_result(check, model_review)}
    else:
        assert check.claims is not None
        result = {**base, **_claims_result(check, workspace, task_text, commands or {})}
    result["deferred"] = bool(deferrable and not result["passed"] and check.defer and not check.critical)
    result["defer_text"] = check.defer if result["deferred"] else None
    return result  # type: ignore[return-value]


def _binding(instances: Instances, op: str) -> tuple[str, Any]:
    """The (copy, value) nearest the threshold: the least for ``>=``/``>``, the most for ``<=``/``<``."""
    numeric = [(t, v) for t, v in instances if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numeric) == len(instances) and op in (">=", ">"):
        return min(numeric, key=lambda tv: tv[1])
    if len(numeric) == len(instances) and op in ("<=", "<"):
        return max(numeric, key=lambda tv: tv[1])
    return instances[0]


def _filled(command: str, lookup: MetricLookup) -> tuple[str, str | None]:
    """The command with ``${task.metric}`` references filled in (shell-quoted); why one cannot be."""
    problems: list[str] = []

    def one(ref: str) -> Any:
        value, problem = lookup(ref)
        if problem is not None:
            problems.append(f"${{{ref}}}: {problem}")
            return refs.MISSING
        return [v for _, v in value] if isinstance(value, Instances) else value

    filled = str(refs.fill_command(command, one, final=True))
    return filled, "; ".join(problems) or None


def _command_result(check: Check, command: str, workspace: Path, timeout: float) -> dict[str, Any]:
    """Run a command check: exit 0 and no failures in a test summary; with ``metric``, the number it
    wrote to ``$COORD_METRICS`` compared with the threshold."""
    with tempfile.TemporaryDirectory(prefix="coord-check-") as tmp:
        metrics_file = Path(tmp) / "metrics.json"
        m, detail = run_command(command, workspace, timeout, env={"COORD_METRICS": str(metrics_file),
                                                                  "COORD_WORKSPACE": str(workspace)})
        counts = {k: v for k, v in (("passed", m.passed), ("failed", m.failed), ("errors", m.errors))
                  if v is not None}
        failures = (m.failed or 0) + (m.errors or 0)
        ran = m.exit_code == 0 and not failures
        if failures and m.exit_code == 0:
            detail += " (exit 0, but the test summary reports failures)"
        out: dict[str, Any] = {"kind": "command", "target": command, "counts": counts}
        if check.metric is None:
            return {**out, "measured": m.exit_code, "passed": ran, "detail": detail, "threshold": "exit 0"}
        measured, problem = _metric_from(metrics_file, check.metric)
        passed = ran and problem is None and _compare(measured, check.op, check.value)
        if not ran:
            problem = detail
        elif problem is None:
            problem = f"{detail}; {check.metric} = {fmt_num(measured)}"
        return {**out, "measured": measured, "passed": passed, "op": check.op, "threshold": check.value,
                "detail": problem}


def _metric_from(path: Path, name: str) -> tuple[Any, str | None]:
    """A metric from the JSON object a command wrote to ``$COORD_METRICS``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"the command wrote no metrics (expected {name!r} in the JSON file $COORD_METRICS)"
    except (ValueError, UnicodeDecodeError) as e:
        return None, f"$COORD_METRICS is not valid JSON: {e}"
    if not isinstance(data, dict):
        return None, f"$COORD_METRICS holds {type(data).__name__}, expected a JSON object"
    if name not in data:
        return None, f"the command's metrics have no {name!r} (it wrote: {', '.join(sorted(data)) or 'none'})"
    return data[name], None


def evaluate_all(checks: list[Check], lookup: MetricLookup, workspace: Path, *, deferrable: bool = True,
                 command_timeout: float = 600.0, task_text: TaskText | None = None) -> list[CriterionResult]:
    """Measure every check, commands before the claims checks that compare against them."""
    results: dict[int, CriterionResult] = {}
    commands: dict[str, Measured] = {}
    for i, check in enumerate(checks):
        if check.claims is None:
            res = evaluate(check, lookup, workspace, deferrable=deferrable, command_timeout=command_timeout)
            results[i] = res
            if res["kind"] == "command":
                counts = res.get("counts") or {}
                commands[check.name] = Measured(counts.get("passed"), counts.get("failed"),
                                                counts.get("errors"), res["measured"])
    for i, check in enumerate(checks):
        if check.claims is not None:
            results[i] = evaluate(check, lookup, workspace, deferrable=deferrable, task_text=task_text,
                                  commands=commands)
    out = [results[i] for i in range(len(checks))]
    seen: dict[str, int] = {}
    for res in out:  # two checks of one metric would share a derived name; records need distinct ones
        seen[res["name"]] = seen.get(res["name"], 0) + 1
        if seen[res["name"]] > 1:
            res["name"] = f"{res['name']}_{seen[res['name']]}"
    return out


def _claims_result(check: Check, workspace: Path, task_text: TaskText | None,
                   commands: Mapping[str, Measured]) -> dict[str, Any]:
    spec = check.claims
    assert spec is not None
    source = f"task {spec.task}" if spec.task else f"file {spec.file}"
    out: dict[str, Any] = {"kind": "claims", "target": source, "threshold": f"matches {spec.against}",
                           "claims": [], "claimed": None}
    measured = commands.get(spec.against)
    if measured is None:
        return {**out, "measured": None, "passed": False,
                "detail": f"check {spec.against!r} was not measured"}
    if spec.task is not None:
        text = task_text(spec.task) if task_text is not None else ""
    else:
        assert spec.file is not None
        path = workspace / spec.file
        if not path.is_file():
            return {**out, "measured": measured.describe(), "passed": False,
                    "detail": f"{spec.file} is missing"}
        text = path.read_text(encoding="utf-8", errors="replace")
    comparisons = compare(parse_claims(text), measured)
    wrong = [c for c in comparisons if not c["matches"]]
    shown = wrong[0] if wrong else (comparisons[0] if comparisons else None)
    if not comparisons:
        detail = f"no test figures claimed in {source}"
    elif wrong:
        detail = f"{len(wrong)} of {len(comparisons)} claims disagree with the measurement: " + \
            "; ".join(f"claimed {c['text']!r} ({c['claimed']}), measured {c['measured']}" for c in wrong[:3])
    else:
        detail = f"all {len(comparisons)} claims match the measurement"
    return {**out, "measured": measured.describe(), "passed": not wrong, "detail": detail,
            "claims": comparisons, "claimed": shown["claimed"] if shown else None}


_TEXT_SUFFIXES = {".md", ".txt", ".log", ".json", ".yaml", ".yml", ".rst", ""}
_TEXT_LIMIT = 512 * 1024


def task_text_reader(workspace: Path, tasks: Mapping[str, Mapping[str, Any]],
                     expansions: Mapping[str, list[str]]) -> TaskText:
    """Read a task's notes and the text files it reported, for claims checks (bounded in size)."""

    def read(task_id: str) -> str:
        parts: list[str] = []
        for tid in expansions.get(task_id, [task_id]):
            rec = tasks.get(tid) or {}
            parts.extend(str(n) for n in rec.get("notes") or [])
            for art in rec.get("artifacts") or []:
                path = workspace / str(art.get("path", ""))
                if path.suffix.lower() in _TEXT_SUFFIXES and path.is_file() \
                        and path.stat().st_size <= _TEXT_LIMIT:
                    parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "\n".join(parts)

    return read


def check_file(workspace: Path, rel: str, validator: str | None) -> tuple[bool, str | None]:
    """A file (or every data file of a directory) exists, parses and passes ``validator``."""
    path = workspace / rel
    if not path.exists():
        return False, "missing"
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in {".json", ".jsonl"}
                       and not p.name.endswith(".manifest.json"))  # coord's own manifests beside outputs
        if not files:
            return False, "directory holds no .json or .jsonl files"
        problems = []
        for f in files:
            ok, why = _check_one(f, validator)
            if not ok:
                problems.append(f"{f.name}: {why}")
        if problems:
            return False, f"{len(problems)} of {len(files)} files fail: " + "; ".join(problems[:3])
        return True, f"{len(files)} files" + (f" validate as {validator}" if validator else " parse")
    return _check_one(path, validator)


def _check_one(path: Path, validator: str | None) -> tuple[bool, str | None]:
    if validator is not None:
        return VALIDATORS.get(validator)(path)
    if path.suffix == ".jsonl":
        return check_jsonl(path)
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in {".yaml", ".yml"}:
            yaml.safe_load(path.read_text(encoding="utf-8"))
    except (ValueError, yaml.YAMLError) as e:
        return False, f"does not parse: {e}"
    return True, None


def check_jsonl(path: Path) -> tuple[bool, str | None]:
    """Validator ``jsonl``: every non-blank line parses as JSON."""
    rows = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as e:
                    return False, f"line {n}: {e.msg}"
                rows += 1
    return True, f"{rows} JSON lines"


_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)\b")


def parse_counts(output: str) -> dict[str, int]:
    """Pass/fail counts from a pytest-style summary line ("18 passed, 3 failed, 1 error in 0.4s").

    The last line that has counts wins: that is where test runners print their summary.
    """
    for line in reversed(output.splitlines()):
        found = _COUNTS.findall(line)
        if found:
            counts: dict[str, int] = {}
            for n, kind in found:
                key = "errors" if kind.startswith("error") else kind
                counts[key] = counts.get(key, 0) + int(n)
            return counts
    return {}


def run_command(command: str, cwd: Path, timeout: float,
                env: Mapping[str, str] | None = None) -> tuple[Measured, str]:
    """Run a shell command; exit code, parsed counts and a one-line detail."""
    try:
        proc = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL,
                              env=command_env(env))
    except subprocess.TimeoutExpired:
        return Measured(None, None, None, None), f"timed out after {timeout:.0f}s"
    output = (proc.stdout + proc.stderr).strip()
    counts = parse_counts(output)
    detail = f"exit {proc.returncode}"
    if counts:
        detail += "; " + ", ".join(f"{v} {k}" for k, v in counts.items())
    elif output and proc.returncode != 0:
        detail += ": " + output.splitlines()[-1][:200]
    return Measured(counts.get("passed"), counts.get("failed"), counts.get("errors"), proc.returncode), detail
