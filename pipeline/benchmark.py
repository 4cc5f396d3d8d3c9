"""Benchmark step: held-out items, baseline vs candidate, paired statistics.

The models are the OFFLINE STAND-IN for fine-tuned LLMs, ``offline-tfidf-retrieval``
(:mod:`pipeline.responder`): a TF-IDF nearest-neighbour responder trained on
the rows of a training file. For agent A:

- **candidate** — trained on A's training file (own rows weight 1.0 plus the
  weighted cross-agent rows); each row's prompt similarity is multiplied by
  its weight.
- **baseline** — the same model trained on the same file WITHOUT the
  agent-specific rows (``source_agent == A`` removed): the ablation that
  isolates what A's own data contributes.

The system prompt is left out of the match text because it names the target
agent, not the task; prompt variants (which differ only in it) therefore
collapse to one memory row per distinct example text, keeping the highest
weight. A held-out row's prompt is its conversation before the
final ``gpt`` turn and its reference is that turn. An answer is **correct**
when its TF-IDF cosine similarity to the reference is ≥ ``match_threshold``
(:func:`pipeline.responder.answer_similarity`). Both models answer the same
items, so the comparison is paired: exact McNemar per agent,
Benjamini–Hochberg across agents, Wilson intervals at ``1 − alpha``, Cohen's h.

Every training file in ``train_dir`` (benchmarked agent or not) is scanned for
held-out ``base_id``s, malformed rows included (``leaked_ids``); the step still
reports, and the launch gate requires 0.

A row whose conversation ends on a tool call or result has no answer to ask for or
to answer with: it is skipped, not rejected, and counted (``heldout_unanswered``,
``training_rows_unanswered``); a skipped held-out row still counts for leaks.

Metrics: ``model``, ``agents``, ``items``, ``leaked_ids``, ``rejected_lines``,
``heldout_unanswered``, ``training_rows_unanswered``,
``baseline_accuracy``, ``candidate_accuracy`` (pooled, fractions),
``absolute_improvement`` (percentage points), ``relative_improvement_pct``
(``100 × (cand/base − 1)``, in percent; None when the baseline is 0), ``pooled_mcnemar_p``,
``pooled_cohens_h``, ``min_relative_improvement_pct`` and
``min_absolute_improvement`` (over agents; agents with baseline 0 have no
relative value and are left out of its minimum), ``significant_agents``
(BH-rejected at ``alpha`` with the candidate better), ``significant_share``
(``significant_agents / agents``, so a gate threshold means the same for any
number of agents), and per agent
``<a>_items``, ``<a>_baseline_accuracy``, ``<a>_candidate_accuracy``,
``<a>_absolute_improvement``, ``<a>_relative_improvement_pct``, ``<a>_mcnemar_p``,
``<a>_adjusted_p``, ``<a>_significant``.

Outputs (under ``out_dir``): ``benchmark.json``, ``benchmark.md`` and
``items.jsonl`` (every item's retrieved row, similarity and verdict per model).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError, ParameterError
from coordinator.core.io import (
    JsonlWriter,
    Rejects,
    atomic_write_json,
    atomic_write_text,
    data_files,
)
from pipeline._benchmark_data import HeldoutItem, read_heldout, read_training
from pipeline._benchmark_report import (
    REPORT_SCHEMA_VERSION,
    STAND_IN,
    STAND_IN_LABEL,
    AgentSummary,
    BenchmarkReport,
    Leakage,
    PooledSummary,
    comparison,
    render_markdown,
)
from pipeline.compat import AGENT_NAME
from pipeline.provenance import benchmark_note, benchmark_provenance
from pipeline.responder import (
    MODEL_NAME,
    MemoryRow,
    PromptTokenizer,
    Retrieval,
    RetrievalResponder,
    answer_similarity,
)
from pipeline.stats import benjamini_hochberg, paired_comparison

log = logging.getLogger(__name__)

DEFAULT_TRAIN_DIR = WsPath("data/sft_final/unsloth")
DEFAULT_HELDOUT_DIR = WsPath("data/heldout")
DEFAULT_OUT_DIR = WsPath("reports/benchmark")
DEFAULT_MATCH_THRESHOLD = 0.2
"""Cosine similarity to the reference at which an answer counts as correct.

Anchored in the data, not in model results: on the offline week2 data two
reference answers of the same task category have a median similarity of 0.20,
while answers of other agents score below 0.14 in 95% of pairs. So ≥ 0.2 reads
"an answer of the right kind, using the task's vocabulary"; raise it for
stricter, near-verbatim matching.
"""


@dataclass
class _AgentRun:
    """One agent's held-out items and both models' answers, in item order."""

    items: list[HeldoutItem]
    baseline: list[Retrieval]
    candidate: list[Retrieval]
    baseline_memory: int
    candidate_memory: int


def _train_and_answer(memories: dict[str, list[MemoryRow]], heldout: dict[str, list[HeldoutItem]],
                      seed: int) -> dict[str, _AgentRun]:
    """Fit each agent's candidate and baseline and let both answer its held-out prompts."""
    texts = sorted({r.prompt for rows in memories.values() for r in rows})
    position = {t: i for i, t in enumerate(texts)}
    tokenizer = PromptTokenizer(texts)  # every distinct prompt is tokenized once
    runs: dict[str, _AgentRun] = {}
    for agent, rows in sorted(memories.items()):
        idx = np.fromiter((position[r.prompt] for r in rows), dtype=np.intp, count=len(rows))
        foreign = np.fromiter((r.source_agent != agent for r in rows), dtype=bool, count=len(rows))
        cand = RetrievalResponder(rows, tokenizer.text_counts[idx], seed=seed)
        base = RetrievalResponder([r for r, f in zip(rows, foreign, strict=True) if f],
                                  tokenizer.text_counts[idx[foreign]], seed=seed)
        queries = tokenizer.counts([it.prompt for it in heldout[agent]])
        runs[agent] = _AgentRun(heldout[agent], base.respond(queries), cand.respond(queries),
                                len(base), len(cand))
    return runs


def _check_params(agents: list[str] | None, alpha: float, match_threshold: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ParameterError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0.0 < match_threshold <= 1.0:
        raise ParameterError(f"match_threshold must be in (0, 1], got {match_threshold!r}")
    if agents is not None:
        bad = [a for a in agents if not isinstance(a, str) or not AGENT_NAME.match(a)]
        if bad or not agents:
            raise ParameterError(f"agents must be a non-empty list of agent names, got {agents!r}")


@step("benchmark", limits={"agents": {"min_size": 1, "pattern": AGENT_NAME.pattern},
                           "alpha": {"gt": 0, "lt": 1}, "match_threshold": {"gt": 0, "le": 1}},
      provenance=benchmark_provenance, board_note=benchmark_note)
def benchmark(ctx: StepContext, *, train_dir: WsPath = DEFAULT_TRAIN_DIR,
              heldout_dir: WsPath = DEFAULT_HELDOUT_DIR, out_dir: WsPath = DEFAULT_OUT_DIR,
              agents: list[str] | None = None, seed: int = 42, alpha: float = 0.05,
              match_threshold: float = DEFAULT_MATCH_THRESHOLD) -> StepResult:
    """Benchmark the offline stand-in candidate against its ablated baseline on held-out items."""
    _check_params(agents, alpha, match_threshold)
    train, held, out = ctx.path(train_dir), ctx.path(heldout_dir), ctx.path(out_dir)
    for d in (train, held):
        if not d.is_dir():
            raise InputError("directory not found", path=ctx.rel(d))
    train_files = {p.stem: p for p in data_files(train)}
    held_files = {p.stem: p for p in data_files(held)}
    names = sorted(set(agents)) if agents is not None else sorted(held_files)
    if not names:
        raise InputError("no held-out files", path=ctx.rel(held))
    for a in names:
        if a not in held_files:
            raise InputError(f"no held-out file for agent {a!r}", path=ctx.rel(held / f"{a}.jsonl"))
        if a not in train_files:
            raise InputError(f"no training file for agent {a!r}", path=ctx.rel(train / f"{a}.jsonl"))

    json_out, md_out, items_out = out / "benchmark.json", out / "benchmark.md", out / "items.jsonl"
    params = {"train_dir": train_dir, "heldout_dir": heldout_dir, "out_dir": out_dir, "agents": agents,
              "seed": seed, "alpha": alpha, "match_threshold": match_threshold}
    run = StepRun(ctx, "benchmark", params, inputs=[*train_files.values(), *(held_files[a] for a in names)],
                  outputs=[json_out, md_out, items_out], seed=seed, provider=MODEL_NAME)
    if (cached := run.cached()) is not None:
        return cached

    with Rejects(json_out) as rejects:
        sets = {a: read_heldout(held_files[a], ctx.rel(held_files[a]), rejects) for a in names}
        heldout = {a: sets[a].items for a in names}
        # a held-out row with no answer to ask for is skipped, but its example is still held out
        owner = {b: a for a in names for b in (*(it.base_id for it in sets[a].items), *sets[a].unanswered)}
        leaked: set[str] = set()
        memories: dict[str, list[MemoryRow]] = {}
        intern: dict[str, str] = {}
        training_unanswered = 0
        for i, (stem, path) in enumerate(sorted(train_files.items())):
            ctx.report(f"benchmark: reading {ctx.rel(path)}", 0.8 * i / len(train_files))
            memory, file_leaks, skipped = read_training(path, ctx.rel(path), rejects, frozenset(owner),
                                                        intern if stem in heldout else None)
            leaked |= file_leaks
            training_unanswered += skipped
            if stem in heldout:
                if not memory:
                    raise InputError("no usable training rows", path=ctx.rel(path))
                memories[stem] = memory
        rejected = rejects.count
    del intern
    ctx.report("benchmark: training and answering", 0.8)
    runs = _train_and_answer(memories, heldout, seed)

    per_agent, pooled, item_rows = _evaluate(runs, names, owner, leaked, alpha, match_threshold)
    metrics = _metrics(per_agent, pooled, len(leaked), rejected)
    heldout_unanswered = sum(len(sets[a].unanswered) for a in names)
    metrics.update(heldout_unanswered=heldout_unanswered, training_rows_unanswered=training_unanswered)
    report = BenchmarkReport(
        schema_version=REPORT_SCHEMA_VERSION, model=MODEL_NAME, stand_in=STAND_IN_LABEL,
        model_description=STAND_IN,
        judge=f"correct when TF-IDF cosine(answer, reference) >= {match_threshold}",
        params={**params, "confidence": 1.0 - alpha},
        leakage=Leakage(leaked_ids=len(leaked), examples=sorted(leaked)[:20]),
        rejected_lines=rejected, pooled=pooled, agents=per_agent)

    with JsonlWriter(items_out) as w:
        for rec in item_rows:
            w.write_obj(rec)
    run.record(items_out, rows=w.count, sha256=w.sha256)
    atomic_write_json(json_out, report)
    run.record(json_out)
    atomic_write_text(md_out, render_markdown(report))
    run.record(md_out)
    log.info("benchmark: %d agents, %d items, %d leaked ids", len(names), metrics["items"], len(leaked))
    notes = [f"{MODEL_NAME}: offline stand-in for a fine-tuned LLM"]
    if leaked:
        notes.append(f"{len(leaked)} held-out base_ids appear in training files")
    if heldout_unanswered or training_unanswered:
        notes.append(f"skipped rows that end on a tool call or result instead of an answer: "
                     f"{heldout_unanswered} held out, {training_unanswered} training")
    return run.finish(metrics, notes)


def _evaluate(runs: dict[str, _AgentRun], names: list[str], owner: dict[str, str], leaked: set[str],
              alpha: float, threshold: float
              ) -> tuple[dict[str, AgentSummary], PooledSummary, list[dict[str, Any]]]:
    """Judge every answer, then compute per-agent (BH across agents) and pooled statistics."""
    refs = [it.reference for a in names for it in runs[a].items]
    base_sims, cand_sims = answer_similarity(
        refs, [r.answer for a in names for r in runs[a].baseline],
        [r.answer for a in names for r in runs[a].candidate])
    base_ok, cand_ok = base_sims >= threshold, cand_sims >= threshold
    confidence = 1.0 - alpha
    slices: dict[str, slice] = {}
    item_rows: list[dict[str, Any]] = []
    for a in names:
        r = runs[a]
        sl = slices[a] = slice(len(item_rows), len(item_rows) + len(r.items))
        for j, it in enumerate(r.items):
            k = sl.start + j
            item_rows.append({
                "agent": a, "id": it.id, "base_id": it.base_id, "category": it.category,
                "baseline": {"retrieved": r.baseline[j].key, "score": r.baseline[j].score,
                             "similarity": float(base_sims[k]), "correct": bool(base_ok[k])},
                "candidate": {"retrieved": r.candidate[j].key, "score": r.candidate[j].score,
                              "similarity": float(cand_sims[k]), "correct": bool(cand_ok[k])}})
    cmps = {a: paired_comparison(base_ok[sl], cand_ok[sl], confidence) for a, sl in slices.items()}
    rejected, adjusted = benjamini_hochberg([cmps[a].mcnemar_p for a in names], alpha)
    per_agent = {
        a: AgentSummary(**comparison(cmps[a]), adjusted_p=adj, significant=rej and cmps[a].c > cmps[a].b,
                        baseline_memory=runs[a].baseline_memory, candidate_memory=runs[a].candidate_memory,
                        baseline_mean_similarity=float(base_sims[slices[a]].mean()),
                        candidate_mean_similarity=float(cand_sims[slices[a]].mean()),
                        leaked_ids=sum(1 for b in leaked if owner.get(b) == a))
        for a, rej, adj in zip(names, rejected, adjusted, strict=True)}
    rels = [c.relative_improvement for c in cmps.values() if c.relative_improvement is not None]
    pooled = PooledSummary(**comparison(paired_comparison(base_ok, cand_ok, confidence)),
                           significant_agents=sum(1 for m in per_agent.values() if m["significant"]),
                           min_relative_improvement_ratio=min(rels) if rels else None,
                           min_absolute_improvement=min(c.absolute_improvement for c in cmps.values()))
    return per_agent, pooled, item_rows


def _pct(ratio: float | None) -> float | None:
    """A relative improvement (candidate / baseline − 1) as a step metric: in percent, named ``*_pct``."""
    return None if ratio is None else 100.0 * ratio


def _metrics(per_agent: dict[str, AgentSummary], pooled: PooledSummary, leaked: int,
             rejected: int) -> dict[str, MetricValue]:
    metrics: dict[str, MetricValue] = {
        "model": MODEL_NAME, "agents": len(per_agent), "items": pooled["n"], "leaked_ids": leaked,
        "rejected_lines": rejected,
        "baseline_accuracy": pooled["baseline_accuracy"], "candidate_accuracy": pooled["candidate_accuracy"],
        "absolute_improvement": pooled["absolute_improvement"],
        "relative_improvement_pct": _pct(pooled["relative_improvement_ratio"]),
        "pooled_mcnemar_p": pooled["mcnemar_p"], "pooled_cohens_h": pooled["cohens_h"],
        "min_relative_improvement_pct": _pct(pooled["min_relative_improvement_ratio"]),
        "min_absolute_improvement": pooled["min_absolute_improvement"],
        "significant_agents": pooled["significant_agents"],
        "significant_share": pooled["significant_agents"] / len(per_agent) if per_agent else 0.0,
    }
    for a, m in per_agent.items():
        metrics.update({f"{a}_items": m["n"], f"{a}_baseline_accuracy": m["baseline_accuracy"],
                        f"{a}_candidate_accuracy": m["candidate_accuracy"],
                        f"{a}_absolute_improvement": m["absolute_improvement"],
                        f"{a}_relative_improvement_pct": _pct(m["relative_improvement_ratio"]),
                        f"{a}_mcnemar_p": m["mcnemar_p"], f"{a}_adjusted_p": m["adjusted_p"],
                        f"{a}_significant": m["significant"]})
    return metrics
