"""The charted pages — costs and benchmark — gathered from the engine's ledger and the run's report.

Costs are the ledger rows and totals ``coord costs`` reads and the budget ``coord budget show``
computes; the benchmark is the JSON report the run's benchmark task wrote. Only the cumulative sums
a spend chart draws are computed here.
"""

from __future__ import annotations

from datetime import datetime
from itertools import accumulate
from typing import Any

import orjson

from coordinator.core.errors import InputError
from coordinator.core.events import read_events
from coordinator.core.workspace import Workspace
from coordinator.engine.budget_service import cost_calls, cost_totals
from coordinator.engine.stores import open_ledger
from coordinator.web import charts
from coordinator.web.security import safe_path
from coordinator.web.views import budget_now, file_link, status_of

BENCHMARK_REPORT = "reports/benchmark/benchmark.json"
"""Where the week2 benchmark writes its JSON report (used when no task of the run lists one)."""


def _when(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def _series(calls: list[dict[str, Any]], key: str) -> list[charts.Series]:
    """Cumulative settled spend per ``key`` (role or model) over the calls' times, largest first, and the
    run's total when there is more than one group."""
    settled = sorted(((_when(c["at"]), str(c.get(key) or "—"), float(c["usd"])) for c in calls
                      if not c.get("pending") and c.get("usd") is not None), key=lambda x: x[0])
    by: dict[str, tuple[list[datetime], list[float]]] = {}
    for at, name, usd in settled:
        times, sums = by.setdefault(name, ([], []))
        times.append(at)
        sums.append((sums[-1] if sums else 0.0) + usd)
    ordered = sorted(by.items(), key=lambda kv: -kv[1][1][-1])
    series = [charts.Series(name, times, sums) for name, (times, sums) in ordered]
    if len(series) > 1:  # the run's total, which the budget line and the alerts are about
        series.append(charts.Series("all (run total)", [at for at, _, _ in settled],
                                    list(accumulate(usd for _, _, usd in settled)), total=True))
    return series


def costs_context(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The costs page: spend over time per role and per model, the budget line and alerts, totals, calls."""
    st = status_of(ws, run_id)
    rid = st["run_id"]
    calls = cost_calls(ws, rid)
    totals = cost_totals(ws, rid, ["role", "model", "task", "agent"])
    budget, problem = budget_now(ws, rid, st)
    alerts = [charts.Alert(_when(e["ts"]), float(e.get("threshold", 0)), float(e.get("spent_usd", 0)))
              for e in read_events(ws.events, rid) if e.get("kind") == "budget_alert"]
    limit = (budget or {}).get("run", {}).get("limit_usd")
    thresholds = (budget or {}).get("thresholds") or []
    drawn = {}
    for key, title in (("role", "Spend over time per role"), ("model", "Spend over time per model")):
        series = _series(calls, key)
        drawn[key] = charts.spend_chart(series, title=title, limit_usd=limit, thresholds=thresholds,
                                        alerts=alerts) if series else None
    first = totals["role"]
    return {
        "run": {"run_id": rid, "plan": st["plan"], "phase": st["phase"]},
        "budget": budget, "budget_problem": problem, "alerts": alerts, "charts": drawn,
        "totals": {g: [t.__dict__ for t in rows] for g, rows in totals.items()},
        "total": {"usd": sum(t.usd for t in first), "calls": sum(t.calls for t in first),
                  "unknown": sum(t.unknown for t in first), "pending": sum(t.pending for t in first),
                  "pending_usd": sum(t.pending_usd for t in first)},
        "flags": open_ledger(ws).flags(rid),
        "calls": [{**c, "detail": c.get("detail") or {}} for c in calls[-200:]],
        "calls_total": len(calls),
    }


def _benchmark_path(ws: Workspace, st: dict[str, Any], requested: str | None) -> str | None:
    """The report to show: the one asked for, else the one a task of the run wrote, else the default."""
    if requested:
        safe_path(ws, requested)  # refuses traversal and anything outside the served folders
        return requested
    for rec in st["tasks"].values():
        for a in rec.get("artifacts") or []:
            if str(a["path"]).endswith("benchmark.json"):
                return str(a["path"])
    return BENCHMARK_REPORT if (ws.root / BENCHMARK_REPORT).is_file() else None


def _accuracy(name: str, row: Any, path: str, field: str) -> charts.Accuracy:
    try:
        return charts.Accuracy(name, int(row["n"]), float(row["baseline_accuracy"]),
                               (float(row["baseline_ci"][0]), float(row["baseline_ci"][1])),
                               float(row["candidate_accuracy"]),
                               (float(row["candidate_ci"][0]), float(row["candidate_ci"][1])))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise InputError(f"not a benchmark result ({type(e).__name__}: {e})", path=path, field=field) from None


def benchmark_context(ws: Workspace, run_id: str, requested: str | None = None) -> dict[str, Any]:
    """The benchmark page: per-agent accuracy, baseline vs fine-tuned, with Wilson intervals."""
    st = status_of(ws, run_id)
    rid = st["run_id"]
    base = {"run": {"run_id": rid, "plan": st["plan"], "phase": st["phase"]}}
    path = _benchmark_path(ws, st, requested)
    if path is None:
        return {**base, "report": None, "path": None}
    try:
        data = orjson.loads(safe_path(ws, path).read_bytes())
    except orjson.JSONDecodeError as e:
        raise InputError(f"not JSON ({e})", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
        raise InputError("a benchmark report has an 'agents' mapping", path=path, field="agents")
    rows = [_accuracy(name, row, path, f"agents.{name}") for name, row in data["agents"].items()]
    agents = [{"name": name, **row} for name, row in data["agents"].items()]
    pooled = data.get("pooled") if isinstance(data.get("pooled"), dict) else None
    if pooled is not None:
        rows.append(_accuracy("pooled", pooled, path, "pooled"))
    confidence = float((data.get("params") or {}).get("confidence", 0.95))
    return {**base, "path": path, "link": file_link(ws, path),
            "report": {"model": data.get("model"), "description": data.get("model_description"),
                       "judge": data.get("judge"), "stand_in": data.get("stand_in"),
                       "confidence": confidence, "alpha": (data.get("params") or {}).get("alpha"),
                       "leaked": (data.get("leakage") or {}).get("leaked_ids"), "agents": agents,
                       "pooled": pooled},
            "chart": charts.accuracy_chart(rows, confidence=confidence) if rows else None}
