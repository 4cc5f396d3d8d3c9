"""Decisions from the dashboard: the CLI's decision path, recorded exactly once per form.

A form carries an idempotency key, made when the page was drawn. The first request with a key
queues the decision through :func:`coordinator.engine.decisions.queue_decision` — the first half
of ``record_decision``, which checks it, queues it durably and logs ``decision_queued`` — and
hands it to one worker thread that applies it with ``apply_queued``, the second half (it resumes
the run, or leaves the decision to the live run that holds the workspace). The page answers at
once; the run's progress then arrives over the event stream. A repeat of a key (a double click,
a browser retrying the POST) gets the first outcome back and records nothing. Decisions under
different keys are serialized and meet the engine's own guard: the same decision already queued
or taken is not queued again, a different one is refused while the first is pending.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Literal

from coordinator.core.errors import CoordError
from coordinator.core.events import now_iso
from coordinator.core.state import DecisionRecord
from coordinator.core.workspace import Workspace
from coordinator.engine.decisions import apply_queued, queue_decision

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"[0-9a-f]{32}")
"""An idempotency key: 32 hex digits (a uuid4 drawn into the form)."""
KEPT = 1000
"""Outcomes remembered (per server process) to answer repeats of their keys."""
Action = Literal["approve", "reject", "override"]
VERBS = {"approve": "approved", "reject": "rejected", "override": "overridden"}


@dataclass(frozen=True)
class Outcome:
    """What became of one submitted form."""

    key: str
    run_id: str
    gate_id: str
    action: str
    by: str
    ok: bool
    """False when the decision was refused (nothing recorded)."""
    message: str
    """What happened, in a sentence: shown on the run page."""
    decision_id: str | None = None
    at: str = field(default_factory=now_iso)


class DecisionDesk:
    """Queues decisions (once per key) and applies them one at a time on a worker thread."""

    def __init__(self, ws: Workspace, identity: str) -> None:
        self.ws = ws
        self.identity = identity
        self._lock = threading.Lock()
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self._work: queue.Queue[tuple[str, str, DecisionRecord]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._busy = threading.Event()
        self.version = 0
        """Bumped whenever an outcome changes (open event streams send the change)."""

    def decide(self, run_id: str, gate_id: str, action: Action, *, note: str | None, grade: str | None,
               key: str) -> Outcome:
        """Queue a person's decision once per ``key`` and have it applied; the outcome (the first one
        for a repeated key)."""
        with self._lock:
            known = self._outcomes.get(key)
            if known is not None:
                return known
            try:
                rid, decision = queue_decision(self.ws, gate_id, action, note=note, grade=grade, by=self.identity,
                                               run_id=run_id)
            except CoordError as e:
                outcome = Outcome(key, run_id, gate_id, action, self.identity, False,
                                  f"{action} of gate {gate_id} refused: {e}")
                self._keep(outcome)
                return outcome
            what = VERBS[action] + (f" with grade {grade}" if action == "override" else "")
            head = f"gate {gate_id} {what} by {decision['by']} at {decision['at'][11:19]} UTC"
            outcome = Outcome(key, rid, gate_id, action, decision["by"], True, f"{head}; the run is taking it…",
                              decision["id"])
            self._keep(outcome)
        self._work.put((key, rid, decision))
        self._ensure_worker()
        return outcome

    def outcomes(self, run_id: str, n: int = 5) -> list[Outcome]:
        """The newest ``n`` outcomes of forms about ``run_id``, newest first."""
        with self._lock:
            return [o for o in reversed(self._outcomes.values()) if o.run_id == run_id][:n]

    @property
    def busy(self) -> bool:
        """True while a decision is being applied (a resumed run may be running in this process)."""
        return self._busy.is_set() or not self._work.empty()

    def _keep(self, outcome: Outcome) -> None:
        self._outcomes[outcome.key] = outcome
        self._outcomes.move_to_end(outcome.key)
        while len(self._outcomes) > KEPT:
            self._outcomes.popitem(last=False)
        self.version += 1

    def _ensure_worker(self) -> None:
        """Start the one worker thread on first use; it then waits for work for the server's lifetime."""
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._drain, name="coord-serve-decisions", daemon=True)
                self._worker.start()

    def _drain(self) -> None:
        while True:
            key, run_id, decision = self._work.get()
            self._busy.set()
            try:
                message = self._apply(run_id, decision)
            finally:
                self._busy.clear()
            with self._lock:
                first = self._outcomes.get(key)
                if first is not None:
                    head = first.message.removesuffix("; the run is taking it…")
                    self._outcomes[key] = replace(first, message=f"{head}: {message}")
                    self.version += 1

    def _apply(self, run_id: str, decision: DecisionRecord) -> str:
        """Let the run take the decision; what happened, in a sentence."""
        try:
            result = apply_queued(self.ws, run_id, decision)
        except CoordError as e:
            return f"recorded, but the run could not continue: {e} (continue it with `coord resume {run_id}`)"
        except Exception as e:  # a fault in a resumed run must not end the dashboard; it is logged in full
            log.exception("dashboard: applying decision %s on run %s failed", decision["id"], run_id)
            return (f"recorded, but continuing the run failed ({type(e).__name__}: {e}); "
                    f"`coord resume {run_id}` continues it")
        if result.live:
            return "the live run that holds the workspace applies it"
        if not result.applied:
            return f"queued; the run did not take it ({result.phase}): `coord resume {run_id}` applies it"
        return f"the gate is {result.gate_status}; the run is {result.phase}"
