"""Measure checks: metric comparisons, file checks and commands, never an agent's word."""

from __future__ import annotations

import json
import math
import operator
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from coordinator.plan import Check
from coordinator.state import CriterionResult

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
    "==": operator.eq, "!=": operator.ne,
}

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
        return values, None

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


def evaluate(check: Check, lookup: MetricLookup, workspace: Path, *, deferrable: bool = True,
             command_timeout: float = 600.0) -> CriterionResult:
    """Measure one check."""
    base: dict[str, Any] = {"name": check.name, "label": check.describe(), "critical": check.critical,
                            "weight": check.weight, "op": None, "threshold": None, "detail": None}
    detail: str | None
    if check.metric is not None:
        measured, problem = lookup(check.metric)
        if isinstance(measured, list):  # fanned-out task: every instance must pass
            failing = [(tid, v) for tid, v in measured if not _compare(v, check.op, check.value)]
            passed = not failing
            detail = ("fails for " + ", ".join(f"{t}={v}" for t, v in failing)) if failing else \
                f"passes for all {len(measured)} instances"
            shown = failing[0][1] if failing else measured[0][1]
        else:
            passed = problem is None and _compare(measured, check.op, check.value)
            detail, shown = problem, measured
        result = {**base, "kind": "metric", "target": check.metric, "op": check.op,
                  "threshold": check.value, "measured": shown, "passed": passed, "detail": detail}
    elif check.file is not None:
        passed, detail = _check_file(workspace / check.file)
        result = {**base, "kind": "file", "target": check.file, "measured": passed, "passed": passed,
                  "detail": detail}
    else:
        assert check.command is not None
        passed, detail, code = _run_command(check.command, workspace, command_timeout)
        result = {**base, "kind": "command", "target": check.command, "measured": code,
                  "passed": passed, "detail": detail}
    result["deferred"] = bool(deferrable and not result["passed"] and check.defer and not check.critical)
    return result  # type: ignore[return-value]


def _check_file(path: Path) -> tuple[bool, str | None]:
    if not path.exists():
        return False, "missing"
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in {".yaml", ".yml"}:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        elif path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            json.loads(line)
                        except json.JSONDecodeError as e:
                            return False, f"line {n}: {e.msg}"
    except (ValueError, yaml.YAMLError) as e:
        return False, f"does not parse: {e}"
    return True, None


_PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


def _run_command(command: str, cwd: Path, timeout: float) -> tuple[bool, str | None, int | None]:
    try:
        proc = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f}s", None
    output = (proc.stdout + proc.stderr).strip()
    counts = {kind.rstrip("s"): int(n) for n, kind in _PYTEST_COUNTS.findall(output)}
    detail = f"exit {proc.returncode}"
    if counts:
        detail += "; " + ", ".join(f"{v} {k}" for k, v in counts.items())
    elif output and proc.returncode != 0:
        detail += ": " + output.splitlines()[-1][:200]
    return proc.returncode == 0, detail, proc.returncode
