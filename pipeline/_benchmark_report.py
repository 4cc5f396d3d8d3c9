"""The benchmark report: its versioned JSON shape and its markdown rendering."""

from __future__ import annotations

from typing import Any, TypedDict

from pipeline.stats import PairedComparison

REPORT_SCHEMA_VERSION = 2  # 2: relative improvements named *_ratio

STAND_IN_LABEL = "Offline stand-in for a fine-tuned LLM"
STAND_IN = ("TF-IDF nearest-neighbour retrieval that answers with the answer of the most similar "
            "training prompt (similarity × row weight). Candidate = trained on the agent's training "
            "file; baseline = the same model on that file without the agent's own rows.")
"""What the benchmarked models are, repeated in every report."""


class Comparison(TypedDict):
    """A :class:`~pipeline.stats.PairedComparison` in JSON form (intervals as lists)."""

    n: int
    baseline_correct: int
    candidate_correct: int
    baseline_accuracy: float
    candidate_accuracy: float
    baseline_ci: list[float]
    candidate_ci: list[float]
    b: int
    c: int
    mcnemar_p: float
    cohens_h: float
    absolute_improvement: float
    relative_improvement_ratio: float | None
    """candidate / baseline − 1 (a ratio: 0.5 is +50 %); None when the baseline is 0."""


class AgentSummary(Comparison):
    """One agent's results."""

    adjusted_p: float
    """Benjamini–Hochberg adjusted McNemar p-value across agents."""
    significant: bool
    """BH-rejected at alpha and the candidate better (c > b)."""
    baseline_memory: int
    """Distinct training examples the baseline answers from."""
    candidate_memory: int
    baseline_mean_similarity: float
    candidate_mean_similarity: float
    leaked_ids: int
    """This agent's held-out base_ids found in any training file."""


class PooledSummary(Comparison):
    """All agents' items together."""

    significant_agents: int
    min_relative_improvement_ratio: float | None
    min_absolute_improvement: float


class Leakage(TypedDict):
    """Held-out base_ids found in training files."""

    leaked_ids: int
    examples: list[str]
    """Up to 20, sorted."""


class BenchmarkReport(TypedDict):
    """Everything ``benchmark.json`` holds."""

    schema_version: int
    model: str
    stand_in: str
    """Always :data:`STAND_IN_LABEL`: these are not LLM results."""
    model_description: str
    judge: str
    params: dict[str, Any]
    leakage: Leakage
    rejected_lines: int
    pooled: PooledSummary
    agents: dict[str, AgentSummary]


def comparison(cmp: PairedComparison) -> Comparison:
    """JSON form of a paired comparison."""
    return Comparison(
        n=cmp.n, baseline_correct=cmp.baseline_correct, candidate_correct=cmp.candidate_correct,
        baseline_accuracy=cmp.baseline_accuracy, candidate_accuracy=cmp.candidate_accuracy,
        baseline_ci=list(cmp.baseline_ci), candidate_ci=list(cmp.candidate_ci), b=cmp.b, c=cmp.c,
        mcnemar_p=cmp.mcnemar_p, cohens_h=cmp.cohens_h, absolute_improvement=cmp.absolute_improvement,
        relative_improvement_ratio=cmp.relative_improvement)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"


def fmt_pp(points: float) -> str:
    """An accuracy difference in percentage points: ``+8.3 pp``."""
    return f"{points:+.1f} pp"


def fmt_relative(rel: float | None) -> str:
    """A relative change (``cand/base − 1``) in percent: ``+12.0%``; ``n/a`` when the baseline is 0."""
    return "n/a (baseline 0)" if rel is None else f"{100.0 * rel:+.1f}%"


def fmt_improvement(points: float, rel: float | None) -> str:
    """Both units, named: ``+8.3 pp (relative +12.0%)``."""
    return f"{fmt_pp(points)} (relative {fmt_relative(rel)})"


def _p(x: float) -> str:
    return f"{x:.2g}" if x < 0.001 else f"{x:.4f}"


def _summary_row(name: str, m: Comparison, adjusted: str, significant: str) -> str:
    return (f"| {name} | {m['n']} | {_pct(m['baseline_accuracy'])} | {_pct(m['candidate_accuracy'])} "
            f"| {fmt_pp(m['absolute_improvement'])} | {fmt_relative(m['relative_improvement_ratio'])} "
            f"| {_p(m['mcnemar_p'])} | {adjusted} | {significant} |")


def render_markdown(report: BenchmarkReport) -> str:
    """The human-readable benchmark report: a summary table and one table per agent."""
    params = report["params"]
    conf = round(100 * params["confidence"])
    lines = [
        f"# Benchmark — offline stand-in model `{report['model']}`", "",
        f"> **{report['stand_in']}: these are not LLM results.** {report['model_description']} "
        f"An answer is {report['judge']}.", "",
        f"- Held-out base_ids found in training files: **{report['leakage']['leaked_ids']}** (must be 0)",
        f"- Rejected input lines: {report['rejected_lines']}",
        f"- Exact McNemar per agent, Benjamini–Hochberg across agents at alpha = {params['alpha']}; "
        f"{conf}% Wilson intervals; seed {params['seed']}", "",
        "## Summary", "",
        "Improvement is given in both units: **pp** = percentage points of accuracy (candidate − baseline, "
        "absolute; what the launch gate's threshold is in) and **relative** = candidate / baseline − 1.", "",
        "| agent | items | baseline | candidate | Δ (pp) | relative (%) | McNemar p | BH p | significant |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for a, m in report["agents"].items():
        lines.append(_summary_row(a, m, _p(m["adjusted_p"]), "yes" if m["significant"] else "no"))
    pooled = report["pooled"]
    lines += [_summary_row("**pooled**", pooled, "", f"{pooled['significant_agents']} agents"), ""]
    for a, m in report["agents"].items():
        bl, cl = m["baseline_ci"], m["candidate_ci"]
        lines += [
            f"## {a}", "",
            "| | baseline (no own rows) | candidate (full training file) |", "|---|---:|---:|",
            f"| distinct training examples | {m['baseline_memory']} | {m['candidate_memory']} |",
            f"| correct | {m['baseline_correct']} / {m['n']} | {m['candidate_correct']} / {m['n']} |",
            f"| accuracy | {_pct(m['baseline_accuracy'])} | {_pct(m['candidate_accuracy'])} |",
            f"| {conf}% Wilson CI | {_pct(bl[0])} – {_pct(bl[1])} | {_pct(cl[0])} – {_pct(cl[1])} |",
            f"| mean similarity to reference | {m['baseline_mean_similarity']:.3f} "
            f"| {m['candidate_mean_similarity']:.3f} |", "",
            f"Discordant pairs: b = {m['b']} (baseline only right), c = {m['c']} (candidate only right); "
            f"exact McNemar p = {_p(m['mcnemar_p'])}, BH-adjusted p = {_p(m['adjusted_p'])}; "
            f"Cohen's h = {m['cohens_h']:+.3f}; improvement "
            f"{fmt_improvement(m['absolute_improvement'], m['relative_improvement_ratio'])}; "
            f"leaked ids: {m['leaked_ids']}.", "",
        ]
    return "\n".join(lines)
