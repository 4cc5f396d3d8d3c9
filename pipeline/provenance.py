"""What the week2 steps say about where their numbers came from, and whether they cost money.

Every report a person reads (the week summary, each gate's review record, the boards)
says which provider wrote the examples, whether the fine-tune trained anything and
what model the benchmark measured — so nobody mistakes the offline stand-in's numbers
for model results. The steps declare these functions (``@step(provenance=…,
board_note=…, paid=…)``); :mod:`coordinator.core.provenance` asks them. The
sentences come from what the tasks measured (their metrics), falling back on the
task's parameters for a task that has not reported yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

OFFLINE_EXAMPLES = ("the **offline stand-in provider** (deterministic, seeded templates — "
                    "not model output)")
"""How every report names the offline provider's examples."""
DRY_RUN = "**dry run: validated, not trained**"
"""How every report names a dry-run fine-tune (the files passed validation; no model exists)."""
BENCHMARK_STAND_IN = ("the **offline stand-in** for a fine-tuned LLM (TF-IDF retrieval over the training "
                      "files): its accuracies are not LLM results")
"""How every report names the benchmark's offline candidate and baseline."""


FREE_PROVIDERS = frozenset({None, "offline"})
FREE_FINETUNE = frozenset({"dry_run", "local"})


def examples_provenance(tids: list[str], params: Mapping[str, Mapping[str, Any]],
                        records: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Step ``generate``: which provider (and model) wrote the examples."""
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


def finetune_provenance(tids: list[str], params: Mapping[str, Mapping[str, Any]],
                        records: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Step ``finetune``: whether each job trained a model or was a dry run."""
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


def benchmark_provenance(tids: list[str], params: Mapping[str, Mapping[str, Any]],
                         records: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Step ``benchmark``: which model was measured (the offline one is a stand-in)."""
    models = list(dict.fromkeys(str((records.get(t, {}).get("metrics") or {}).get("model") or "unknown")
                                for t in tids))
    if not models:
        return None
    if all(m.startswith("offline") for m in models):
        return f"Benchmark: model `{', '.join(models)}` is {BENCHMARK_STAND_IN}."
    return f"Benchmark: model `{', '.join(models)}`."


def examples_note(params: Mapping[str, Any]) -> str | None:
    """Boards, before ``generate`` ran: where the examples will come from."""
    provider = params.get("provider", "offline")
    if provider == "offline":
        return f"examples come from {OFFLINE_EXAMPLES}"
    return f"examples come from provider `{provider}` (the model is named in the week summary)"


def finetune_note(params: Mapping[str, Any]) -> str | None:
    """Boards, before ``finetune`` ran: a dry run trains nothing."""
    if params.get("backend", "dry_run") == "dry_run":
        return f"fine-tuning is a {DRY_RUN} (tokens and cost estimated)"
    return None


def benchmark_note(params: Mapping[str, Any]) -> str | None:
    """Boards: the benchmark's model is the offline stand-in."""
    return f"the benchmark model is {BENCHMARK_STAND_IN}"


def examples_paid(params: Mapping[str, Any]) -> bool:
    """``generate`` costs money unless its provider is the offline one."""
    return params.get("provider") not in FREE_PROVIDERS


def finetune_paid(params: Mapping[str, Any]) -> bool:
    """``finetune`` costs money on a remote backend (not dry runs or a local GPU)."""
    return params.get("backend", "dry_run") not in FREE_FINETUNE
