"""The ``command`` driver: a task whose work is a command (``command:`` in a plan).

The command runs in the workspace in its own process group (a string through ``/bin/sh -c``,
a list without a shell), stdin closed, stdout and stderr in
``.coord/logs/<run>/<task>.<attempt>.log``. It talks to coord through files named in
its environment:

- ``COORD_METRICS``: the command may write one JSON object of flat metrics there
  (numbers, strings, booleans, null, or lists of them); gates read them as
  ``<task>.<metric>`` exactly like a step's.
- ``COORD_FEEDBACK``: on a second or later attempt, the JSON form of
  :class:`~coordinator.core.feedback.Feedback` (absent on a first attempt).
- ``COORD_COSTS``: each line a JSON object ``{usd, tokens_in, tokens_out, model, provider,
  note}``; every line goes into the cost ledger and counts against the budget.

Also set: ``COORD_RUN_ID``, ``COORD_TASK_ID``, ``COORD_ATTEMPT``, ``COORD_WORKSPACE``.
A non-zero exit, a timeout, invalid metrics or cost lines, or a declared output that
was not written fail the task with the reason and the log's last lines. Declared
``outputs:`` get manifests with their sha256; a rerun with the same command and the
same input files is skipped while the outputs still match.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import math
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from coordinator.core.command_env import command_env
from coordinator.core.errors import ParameterError
from coordinator.core.io import atomic_write_json
from coordinator.core.llm import CallRecord, Cost, Usage
from coordinator.core.plan import CompiledTask
from coordinator.core.ports import DriverContext, DriverTraits, TaskOutcome, tail
from coordinator.core.step import StepContext, metrics_problem
from coordinator.core.step_run import StepRun
from roles.drivers.cli._process import kill_stale, run_in_group
from roles.providers.redact import Redactor

log = logging.getLogger(__name__)

CODE_VERSION = "command-1"
"""Part of a command task's manifest key: a change in how commands run reruns them."""
LOG_TAIL_LINES = 15
COST_FIELDS = {"usd", "tokens_in", "tokens_out", "model", "provider", "note"}


class CommandError(Exception):
    """A command's metrics or cost file is unusable (the message names the file and line)."""


class CommandDriver:
    """Runs ``task.command`` in the workspace."""

    name = "command"
    traits = DriverTraits(stops_on_timeout=True)

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Run the command (or skip it when its outputs are up to date) and read what it reported."""
        assert task.command is not None
        root = Path(ctx.workspace)
        files = _Files(root, ctx.run_id, task.id, ctx.attempt)
        for leftover in files.leftover_costs():  # spent by an execution a killed coord never collected
            try:
                _record_costs(leftover, root, ctx, [])
            except CommandError as e:
                log.warning("%s", e)
        try:
            skip = _manifests(ctx, task, root)
        except ParameterError as e:
            return TaskOutcome(status="failed", error=str(e))
        # a task a gate (or a person) sent back runs again even when nothing it reads changed
        if skip is not None and ctx.feedback is None and (cached := skip.cached()) is not None:
            return TaskOutcome(status="done", metrics=dict(cached.metrics),
                               artifacts=[a.to_dict() for a in cached.artifacts], notes=list(cached.notes),
                               skipped_run=True)
        env = command_env({"COORD_RUN_ID": ctx.run_id, "COORD_TASK_ID": task.id,
                           "COORD_ATTEMPT": str(ctx.attempt), "COORD_WORKSPACE": str(root),
                           "COORD_METRICS": str(files.metrics), "COORD_COSTS": str(files.costs)})
        env.pop("COORD_FEEDBACK", None)
        if ctx.feedback is not None:
            atomic_write_json(files.feedback, ctx.feedback.to_json())
            env["COORD_FEEDBACK"] = str(files.feedback)
        argv = ["/bin/sh", "-c", task.command] if isinstance(task.command, str) else list(task.command)
        stem = ctx.log_file.with_suffix("")
        pid_file = stem.with_name(stem.name + ".pgid")  # the same for this dispatch in a resumed run
        stale = kill_stale(pid_file, root)  # a coord that was killed left this command running: one copy at a time
        try:
            proc = run_in_group(argv, cwd=root, env=env, log_path=files.log, redactor=Redactor.from_env(),
                                cancel=ctx.cancel, timeout=task.timeout, pid_file=pid_file)
        except FileNotFoundError:
            return TaskOutcome(status="failed", error=f"command not found: {argv[0]!r} (is it on PATH?)")
        except PermissionError:
            return TaskOutcome(status="failed", error=f"command not executable: {argv[0]!r}")
        log_rel = files.log.relative_to(root).as_posix()
        notes: list[str] = ["stopped the copy of this command a killed coord had left running"] if stale else []
        try:  # what the command spent counts even when it then failed
            cost = _record_costs(files.costs, root, ctx, notes)
        except CommandError as e:
            return TaskOutcome(status="failed", error=str(e))
        if proc.timed_out:
            return TaskOutcome(status="failed", cost_usd=cost, error=(
                f"timed out after {task.timeout:g}s; its process group was killed (log: {log_rel})\n"
                + _tail(files.log)))
        if proc.cancelled:
            return TaskOutcome(status="failed", cost_usd=cost, error="cancelled (the run is stopping)")
        if proc.exit_code != 0:
            return TaskOutcome(status="failed", cost_usd=cost, error=(
                f"exit {proc.exit_code} (log: {log_rel}); last lines:\n" + _tail(files.log)))
        try:
            metrics = _read_metrics(files.metrics, root)
        except CommandError as e:
            return TaskOutcome(status="failed", cost_usd=cost, error=str(e))
        missing = [o for o in task.outputs if not (root / o).is_file()]
        if missing:
            return TaskOutcome(status="failed", cost_usd=cost, metrics=metrics, error=(
                f"exit 0 but declared outputs were not written: {', '.join(missing)} (log: {log_rel})"))
        said = [line for line in proc.stdout.strip().splitlines()[-3:] if line.strip()]
        notes = [f"exit 0 in {proc.duration_s:.1f}s", *said, *notes]
        artifacts: list[dict[str, Any]] = []
        if skip is not None:
            for out in task.outputs:
                skip.record(root / out)
            result = skip.finish(metrics, notes)
            artifacts = [a.to_dict() for a in result.artifacts]
        return TaskOutcome(status="done", metrics=metrics, artifacts=artifacts, notes=notes, cost_usd=cost)


class _Files:
    """Where one execution's metrics, feedback, costs and log live.

    Each execution gets its own files (a token in the name): a command a killed coord left
    behind may have written costs, and those are recorded once, never overwritten.
    """

    def __init__(self, root: Path, run_id: str, task_id: str, attempt: int) -> None:
        self.safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)
        self.dir = root / ".coord" / "runs" / run_id / "commands"
        self.dir.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:8]
        self.metrics = self.dir / f"{self.safe}.{attempt}.{token}.metrics.json"
        self.feedback = self.dir / f"{self.safe}.{attempt}.{token}.feedback.json"
        self.costs = self.dir / f"{self.safe}.{attempt}.{token}.costs.jsonl"
        self.log = root / ".coord" / "logs" / run_id / f"{self.safe}.{attempt}.log"

    def leftover_costs(self) -> list[Path]:
        """Cost files earlier executions of this task wrote (recording them again changes nothing)."""
        return sorted(p for p in self.dir.glob(f"{glob.escape(self.safe)}.*.costs.jsonl") if p != self.costs)


def _manifests(ctx: DriverContext, task: CompiledTask, root: Path) -> StepRun | None:
    """Manifest bookkeeping for a command with declared outputs (None without outputs: it always runs)."""
    if not task.outputs:
        return None
    step_ctx = StepContext(workspace=root, code_version=CODE_VERSION)
    inputs = [p for p in (step_ctx.path(i) for i in ctx.inputs) if p.is_file()]
    outputs = [step_ctx.path(o) for o in task.outputs]
    params: dict[str, Any] = {"command": task.command}
    if ctx.feedback is not None:  # what a retry writes depends on the review it read
        params["feedback"] = hashlib.sha256(orjson.dumps(ctx.feedback.to_json(), option=orjson.OPT_SORT_KEYS)
                                            ).hexdigest()
    return StepRun(step_ctx, f"command:{task.base_id}", params, inputs=inputs, outputs=outputs)


def _tail(log: Path) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    ending = re.compile(r"# (timed out|interrupted: coord was stopping|cancelled|ended by coord after its result"
                        r"|exit -?\d+) after \d+(\.\d+)?s")  # coord's own lines, as _process writes them
    lines = [line for line in text.splitlines() if not line.startswith(("$ ", "# cwd:")) and not ending.fullmatch(line)]
    return tail("\n".join(lines), LOG_TAIL_LINES) or "(no output)"


def _read_metrics(path: Path, root: Path) -> dict[str, Any]:
    """The metrics the command wrote (none when it wrote no file)."""
    rel = path.relative_to(root).as_posix()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CommandError(f"{rel} (COORD_METRICS): not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CommandError(f"{rel} (COORD_METRICS): expected one JSON object of metrics, got "
                           f"{type(data).__name__}")
    problem = metrics_problem(data)
    if problem:
        raise CommandError(f"{rel} (COORD_METRICS) → {problem}")
    return data


def _record_costs(path: Path, root: Path, ctx: DriverContext, notes: list[str]) -> float:
    """Put every valid cost line into the ledger (money spent is spent, even beside a bad line); the total
    in USD. Bad lines are all named in one :class:`CommandError`, raised after the valid ones are recorded."""
    rel = path.relative_to(root).as_posix()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0.0
    except UnicodeDecodeError as e:
        raise CommandError(f"{rel} (COORD_COSTS): not UTF-8 ({e.reason})") from None
    records: list[tuple[int, Mapping[str, Any]]] = []
    problems: list[str] = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            problem, parsed = _cost_line(line)
            if problem:
                problems.append(f"{rel}:{n} (COORD_COSTS){problem}")
            else:
                records.append((n, parsed))
    total = 0.0
    for n, item in records:
        usd = item.get("usd")
        call = CallRecord(kind="command", provider=str(item.get("provider") or "command"),
                          model=str(item.get("model") or "unknown"),
                          usage=Usage(input_tokens=int(item.get("tokens_in") or 0),
                                      output_tokens=int(item.get("tokens_out") or 0)),
                          cost=Cost(float(usd) if usd is not None else None,
                                    None if usd is not None else "the command reported no price"),
                          ref=f"{rel}:{n}")
        if ctx.spend is not None:
            ctx.spend.record(call)
        total += float(usd or 0.0)
        if item.get("note"):
            notes.append(f"cost ${float(usd or 0):.4f}: {item['note']}")
    if problems:
        kept = f" ({len(records)} valid line(s) recorded, ${total:.4f})" if records else ""
        raise CommandError("; ".join(problems) + kept)
    return total


def _cost_line(line: str) -> tuple[str, dict[str, Any]]:
    """(what is wrong with one cost line — empty when nothing — , the line's object)."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return f": not valid JSON: {e}", {}
    if not isinstance(item, dict):
        return ": expected a JSON object", {}
    if unknown := sorted(set(item) - COST_FIELDS):
        return f" → {unknown[0]}: unknown field (fields: {', '.join(sorted(COST_FIELDS))})", {}
    usd = item.get("usd")
    if usd is not None and (isinstance(usd, bool) or not isinstance(usd, int | float)
                            or not math.isfinite(usd) or usd < 0):
        return f" → usd: a number ≥ 0 or null, got {usd!r}", {}
    for key in ("tokens_in", "tokens_out"):
        v = item.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            return f" → {key}: a whole number ≥ 0, got {v!r}", {}
    for key in ("provider", "model", "note"):
        if item.get(key) is not None and not isinstance(item[key], str):
            return f" → {key}: text, got {item[key]!r}", {}
    return "", item
