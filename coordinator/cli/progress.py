"""Live progress while a run executes: per role, what runs, what is done, which gate is pending."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.live import Live
from rich.markup import escape
from rich.table import Table

from coordinator.cli import console
from coordinator.core.grading import format_score
from coordinator.core.llm import format_usd
from coordinator.core.plan import CompiledPlan


class Progress:
    """Follows the event stream; a live table on a terminal, one line per event otherwise."""

    def __init__(self, plan: CompiledPlan, *, live: bool) -> None:
        self.plan = plan
        self.started = time.monotonic()
        self.status: dict[str, str] = {t: "pending" for t in plan.order}
        self.gates: dict[str, str] = {g: "pending" for g in plan.gates}
        self.notes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._live = Live(get_renderable=self._table, console=console.out, refresh_per_second=4,
                          transient=False) if live else None

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(*exc)

    def on_event(self, event: dict[str, Any]) -> None:
        """Listener for :class:`coordinator.core.events.EventLog`."""
        kind = event["kind"]
        task = event.get("task")
        with self._lock:
            if kind == "task_started" and task:
                self.status[task] = "running"
            elif kind in ("task_finished", "task_recovered") and task:
                self.status[task] = "done" if event.get("status", "done") == "done" else str(event.get("status"))
            elif kind in ("task_failed", "task_timed_out") and task:
                self.status[task] = "failed"
            elif kind == "task_skipped" and task:
                self.status[task] = "skipped"
            elif kind == "task_blocked" and task:
                self.status[task] = "blocked"
            elif kind == "task_held" and task:
                self.status[task] = "waiting"
            elif kind == "gate_decided":
                self.gates[event["gate"]] = str(event.get("status"))
        if self._live is not None:
            return  # the live table re-renders itself from the shared status
        line = self._line(event)
        if line:
            console.status(line)

    def on_progress(self, task: str, message: str, fraction: float | None) -> None:
        """Step progress callback."""
        with self._lock:
            self.notes[task] = message + (f" ({fraction:.0%})" if fraction is not None else "")

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def _line(self, e: dict[str, Any]) -> str | None:
        kind, task = e["kind"], e.get("task")
        if kind == "task_started":
            return f"{self._elapsed()}  ▶ {task} ({e.get('role')}/{e.get('agent')}, {e.get('driver')})" + \
                (f" attempt {e['attempt']}" if e.get("attempt", 1) > 1 else "")
        if kind == "task_finished":
            extra = " (outputs up to date)" if e.get("skipped_run") else ""
            return f"{self._elapsed()}  ✓ {task} in {e.get('duration_s')}s{extra}"
        if kind == "task_recovered":
            mark = {"done": "✓", "waiting": "⏸"}.get(str(e.get("status")), "✗")
            how = "" if e.get("status") == "done" else f" {e.get('status')}"
            return f"{self._elapsed()}  {mark} {task}{how} (result recovered from before the restart)"
        if kind == "task_failed" and e.get("error") is None:  # a hand-over: it waits, nothing failed
            return f"{self._elapsed()}  ⏸ {task} waits for a person (tick it on its board)"
        if kind in ("task_failed", "task_timed_out"):
            return f"{self._elapsed()}  ✗ {task}: {e.get('error') or 'timed out'}"
        if kind == "output_replaced":
            return f"{self._elapsed()}  ! {task} replaced {e.get('path')}, which had been changed by hand"
        if kind == "task_retried":
            return f"{self._elapsed()}  ↻ {task} retry in {e.get('delay_s')}s: {e.get('error')}"
        if kind in ("task_skipped", "task_blocked"):
            return f"{self._elapsed()}  – {task} {kind.split('_')[1]}: {e.get('reason')}"
        if kind == "gate_decided":
            grade = f" grade {e['grade']} ({format_score(e['score'])}/10)" if e.get("grade") else ""
            if e.get("status") == "pending" and e.get("verdict"):  # sent back: gate_retry says how far
                return f"{self._elapsed()}  ◆ gate {e['gate']}: {e['verdict']}{grade}"
            return f"{self._elapsed()}  ◆ gate {e['gate']}: {e.get('status')}{grade}"
        if kind == "gate_retry":
            tasks = ", ".join(e.get("tasks") or [])
            spec = self.plan.gates.get(e["gate"])
            sent = f"sent back {int(e.get('attempt') or 2) - 1}/{spec.max_retries}: " if spec is not None else ""
            return (f"{self._elapsed()}  ↺ gate {e['gate']} {sent}{tasks} run again (attempt {e.get('attempt')}) "
                    f"with {e.get('findings')} finding(s)")
        if kind == "deferred_opened":
            return f"{self._elapsed()}  … deferred: {e.get('item')}"
        if kind == "task_held":
            return f"{self._elapsed()}  ⏸ {task} held: {e.get('reason')}"
        if kind == "budget_alert":
            return (f"{self._elapsed()}  $ budget alert: {100 * float(e.get('threshold') or 0):.0f}% "
                    f"({format_usd(_number(e.get('spent_usd')))} of {format_usd(_number(e.get('limit_usd')))})")
        return None

    def _table(self) -> Table:
        table = Table(title=f"{self.plan.name} · {self._elapsed()}", expand=False)
        for col in ("role", "running", "done", "other"):
            table.add_column(col)
        with self._lock:
            for role in self.plan.roles:
                mine = [t for t in self.plan.order if self.plan.tasks[t].role == role]
                running = [f"{t} {self.notes.get(t, '')}".strip() for t in mine if self.status[t] == "running"]
                done = sum(self.status[t] == "done" for t in mine)
                other = [f"{t}:{self.status[t]}" for t in mine if self.status[t] in ("failed", "skipped", "blocked")]
                table.add_row(role, escape("\n".join(running) or "—"), f"{done}/{len(mine)}",
                              escape(", ".join(other) or "—"))
            gates = ", ".join(f"{g}:{s}" for g, s in self.gates.items())
        table.caption = f"gates: {gates}" if gates else None
        return table


def _number(value: Any) -> float | None:
    """A number an event carries, or None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
