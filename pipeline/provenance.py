"""Where a run's numbers came from, in plain sentences for reports and review records.

Every report a person reads (the week summary, each gate's review record, the boards)
says which provider wrote the examples, whether the fine-tune trained anything and
what model the benchmark measured — so nobody mistakes the offline stand-in's numbers
for model results. The sentences come from what the tasks measured (their metrics),
falling back on the plan's parameters for a task that has not reported yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from coordinator.core.ports import driver_traits

OFFLINE_EXAMPLES = ("the **offline stand-in provider** (deterministic, seeded templates — "
                    "not model output)")
"""How every report names the offline provider's examples."""
DRY_RUN = "**dry run: validated, not trained**"
"""How every report names a dry-run fine-tune (the files passed validation; no model exists)."""
BENCHMARK_STAND_IN = ("the **offline stand-in** for a fine-tuned LLM (TF-IDF retrieval over the training "
                      "files): its accuracies are not LLM results")
"""How every report names the benchmark's offline candidate and baseline."""


def _done(rec: Mapping[str, Any] | None) -> bool:
    return bool(rec) and rec.get("status") == "done"  # type: ignore[union-attr]


def _examples(tids: list[str], params: Mapping[str, Mapping[str, Any]],
              records: Mapping[str, Mapping[str, Any]]) -> str | None:
    sources: list[str] = []
    for tid in tids:
        metrics = records.get(tid, {}).get("metrics") or {}
        provider = metrics.get("provider") or params.get(tid, {}).get("provider") or "offline"
        model = metrics.get("model") or params.get(tid, {}).get("model")
        if provider == "offline":
            sources.append(OFFLINE_EXAMPLES)
        else:
            sources.append(f"provider **{provider}**, model `{model or 'unknown'}`")
    unique = list(dict.fromkeys(sources))
    return f"Examples ({', '.join(tids)}): written by {'; '.join(unique)}." if unique else None


def _finetune(tids: list[str], records: Mapping[str, Mapping[str, Any]]) -> str | None:
    outcomes: Counter[str] = Counter()
    for tid in tids:
        metrics = records.get(tid, {}).get("metrics") or {}
        if metrics.get("dry_run"):
            outcomes[DRY_RUN] += 1
        else:
            status = metrics.get("job_status") or "unknown"
            model = metrics.get("fine_tuned_model")
            outcomes[f"{status}" + (f" (model `{model}`)" if model else "")] += 1
    if not outcomes:
        return None
    parts = [f"{n} job{'s' if n != 1 else ''} {what}" for what, n in outcomes.items()]
    return "Fine-tuning: " + "; ".join(parts) + "."


def _benchmark(tids: list[str], records: Mapping[str, Mapping[str, Any]]) -> str | None:
    models = list(dict.fromkeys(str((records.get(t, {}).get("metrics") or {}).get("model") or "unknown")
                                for t in tids))
    if not models:
        return None
    if all(m.startswith("offline") for m in models):
        return f"Benchmark: model `{', '.join(models)}` is {BENCHMARK_STAND_IN}."
    return f"Benchmark: model `{', '.join(models)}`."


def provenance(steps: Mapping[str, str | None], params: Mapping[str, Mapping[str, Any]],
               records: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Sentences on the run's provenance.

    ``steps`` maps task id → pipeline step it runs (None for an assignment), ``params``
    task id → its parameters, ``records`` task id → its state record (status, driver,
    metrics). Only finished tasks are described; an assignment answered by the offline
    driver is named as such.
    """
    by_step: dict[str, list[str]] = {}
    for tid, step_name in steps.items():
        if step_name and _done(records.get(tid)):
            by_step.setdefault(step_name, []).append(tid)
    lines = [line for line in (
        _examples(by_step.get("generate", []), params, records),
        _finetune(by_step.get("finetune", []), records),
        _benchmark(by_step.get("benchmark", []), records),
    ) if line]
    stand_in = sorted(tid for tid, rec in records.items()
                      if driver_traits(rec.get("driver")).stand_in and _done(rec))
    if stand_in:
        lines.append(f"Assignments ({', '.join(stand_in)}): answered by the **offline stand-in driver**, "
                     "not by an agent.")
    for tid, rec in sorted(records.items()):
        traits = driver_traits(rec.get("driver"))
        if not _done(rec) or not (traits.worktree or traits.paid_unless_free_provider):
            continue
        if not traits.worktree:  # an LLM driver notes "answered by <provider> model <model>"
            said = next((n for n in rec.get("notes") or [] if str(n).startswith("answered by ")), None)
            lines.append(f"Assignment {tid}: {said or 'answered by an LLM provider'}.")
        else:
            lines.append(f"Assignment {tid}: done by the {rec.get('agent') or 'coding-agent'} CLI.")
    return lines


def plan_views(plan_tasks: Mapping[str, Any]) -> tuple[dict[str, str | None], dict[str, dict[str, Any]]]:
    """``steps`` and ``params`` for :func:`provenance` from a plan's tasks (models or their JSON form)."""
    steps: dict[str, str | None] = {}
    params: dict[str, dict[str, Any]] = {}
    for tid, t in plan_tasks.items():
        get = t.get if isinstance(t, Mapping) else lambda k, _t=t: getattr(_t, k, None)
        steps[tid] = get("run")
        params[tid] = dict(get("params") or {})
    return steps, params


def stand_in(lines: list[str]) -> bool:
    """Whether any of the run's numbers came from a stand-in (offline provider, dry run, offline benchmark)."""
    return any("stand-in" in line or DRY_RUN in line for line in lines)
