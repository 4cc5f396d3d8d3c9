"""Small pipeline steps that test plans call (registered on import)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

from coordinator.core.errors import InputError
from coordinator.core.io import atomic_write_text
from coordinator.core.step import StepContext, StepResult, WsPath, step
from coordinator.core.step_run import StepRun


@step("t_noop")
def t_noop(ctx: StepContext, *, value: int = 0) -> StepResult:
    """Do nothing; report the value."""
    return StepResult(metrics={"value": value})


@step("t_sleep")
def t_sleep(ctx: StepContext, *, seconds: float = 0.1) -> StepResult:
    """Sleep a known time."""
    time.sleep(seconds)
    return StepResult(metrics={"slept": seconds})


@step("t_fail")
def t_fail(ctx: StepContext, *, message: str = "boom") -> StepResult:
    """Always fail with an input error."""
    raise InputError(message, path="input.jsonl", line=3, field="text")


@step("t_flaky")
def t_flaky(ctx: StepContext, *, counter: WsPath = WsPath("flaky.count"), fail_times: int = 1) -> StepResult:
    """Fail the first ``fail_times`` calls (counted in a file), then succeed."""
    path = ctx.path(counter)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n < fail_times:
        raise InputError(f"transient failure {n + 1}")
    return StepResult(metrics={"calls": n + 1})


@step("t_write")
def t_write(ctx: StepContext, *, out: WsPath, text: str = "hello", metric: float = 1.0) -> StepResult:
    """Write a file through StepRun; report a metric."""
    path = ctx.path(out)
    run = StepRun(ctx, "t_write", {"out": out, "text": text, "metric": metric}, inputs=[], outputs=[path])
    if (cached := run.cached()) is not None:
        return cached
    atomic_write_text(path, text)
    run.record(path, rows=1)
    return run.finish({"metric": metric, "pid": os.getpid()})


def write_plan(dir_: Path, text: str, name: str = "plan.yaml") -> Path:
    """Write a plan file for a test."""
    path = dir_ / name
    path.write_text(text)
    return path


def remove_record(run_dir: Path, task_id: str, dispatch: int) -> bool:
    """Drop a dispatch's record from a run's results log, as if its process died before writing it."""
    path = run_dir / "results.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    kept = [raw for raw in lines if orjson.loads(raw).get("task") != task_id
            or orjson.loads(raw).get("dispatch") != dispatch]
    path.write_bytes(b"".join(kept))
    return len(kept) < len(lines)
