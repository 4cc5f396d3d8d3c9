"""How a gate's status reads to a person: one function for the boards and `coord status` alike.

Kept light (no Jinja, no reviewer model) so that `coord status`, which must answer in a fraction of
a second, shows the same words as the boards: ``sent back 1/2``, ``approved (override: grade B by
Ana, measured C)``, ``waiting for a person: `coord approve X` …`` rather than a bare status.
"""

from __future__ import annotations

from datetime import UTC, datetime

from coordinator.core.plan import GateSpec
from coordinator.core.state import GateRecord


def window_open(rec: GateRecord, now: datetime | None = None) -> bool:
    """True while an ``auto_then_human`` gate's override window has not closed."""
    until = rec.get("override_until")
    if rec.get("status") != "waiting" or not until:
        return False
    return (now or datetime.now(UTC)) < datetime.fromisoformat(until)


def needs_person(rec: GateRecord) -> bool:
    """A gate that waits for a person and nothing else (no override window running)."""
    return rec.get("status") == "waiting" and not rec.get("override_until")


def gate_status_text(spec: GateSpec, rec: GateRecord, *, board: str | None = None) -> str:
    """A gate's status in words: who decided when a person did (an override marked as one), a gate
    that sent its tasks back as ``sent back 1/2`` (never a bare ``pending`` with the old grade), an
    open override window with its deadline. With ``board`` (where its reviewer ticks ``approve``), a
    gate that waits for a person also says what continues the run; a board, which carries the tick
    itself, leaves it out."""
    status = str(rec.get("status", "pending"))
    history = list(rec.get("history") or [])
    if status == "pending" and history:
        return f"sent back {len(history)}/{spec.max_retries} (attempt {len(history) + 1} waits for its tasks)"
    decision = rec.get("decision")
    if decision and status not in ("pending", "waiting"):
        if decision.get("action") == "override":
            return (f"{status} (override: grade {decision.get('grade')} by {decision.get('by')}, measured "
                    f"{rec.get('grade_measured')})")
        return f"{status} (by {decision.get('by')})"
    if status == "waiting" and window_open(rec):
        return f"{rec.get('verdict')} unless overridden before {rec.get('override_until')}"
    if board is not None and needs_person(rec):
        return (f"waiting for a person: `coord approve {spec.id}` (or reject / override) or tick `approve` "
                f"on {board}")
    return status
