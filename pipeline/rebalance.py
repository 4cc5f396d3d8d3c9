"""rebalance: resample each agent's training rows so its difficulty mix matches a target.

The mix is counted per base example: every ``base_id`` of an agent's Unsloth file
(with all its prompt variants) is one unit of its difficulty. For each agent:

- ``down``: the largest N with ``N·target[d] ≤ available[d]`` for every difficulty;
  ``N·target[d]`` is rounded by largest remainder, and that many base examples of each
  difficulty are kept — the first ones in a seeded blake2b order of
  ``(seed, agent, base_id)``;
- ``up``: the smallest N with ``N·target[d] ≥ available[d]``; every base example is
  kept and the shortfall is filled by repeating base examples in the same seeded
  order (cycling when more copies than bases are needed). Copy ``n ≥ 1`` of a row gets
  the id ``<id>~up<n>``.

All rows of a chosen base example stay together. A difficulty the target asks for but
an agent lacks is left out and the target renormalized over the others (noted);
rows whose difficulty is outside the target are dropped and counted.

Outputs: ``<out_dir>/unsloth/<agent>.jsonl``, ``<out_dir>/openai/<agent>.jsonl``
(regenerated from the kept Unsloth rows by :func:`pipeline.sft.write_openai_rows`, the
same weighted sampling as build_sft), and ``report`` (a before/after table).

Metrics: ``agents``, ``rows_before``, ``rows_after``, ``bases_before``, ``bases_after``,
``openai_rows``, ``frac_before_<d>`` / ``frac_after_<d>`` (over all agents' base
examples), ``difficulty_max_deviation`` (= ``max_deviation_after``: the audit's figure, measured on the output),
``max_deviation_before`` / ``max_deviation_after`` (largest gap to the
target of any agent), ``rows_outside_target``, ``rejects``.

Memory: rows are streamed (two passes per file); the plan keeps 16 bytes per base
example (its order key) and a base → difficulty lookup that spills to disk past a cap
(:class:`BaseCopies`), so it does not grow with the number of rows.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError, ParameterError
from coordinator.core.io import JsonlWriter, Rejects, atomic_write_text, data_files, iter_jsonl
from pipeline._spill import SpillMap
from pipeline.sft import write_openai_rows  # the SFT builder owns the OpenAI conversion

log = logging.getLogger(__name__)

Mode = Literal["down", "up"]
DEFAULT_IN_DIR, DEFAULT_OUT_DIR = WsPath("data/sft_scrubbed"), WsPath("data/sft_final")
DEFAULT_REPORT = WsPath("reports/rebalance.md")
# shared default: the step only reads it
DEFAULT_TARGET: dict[str, float] = {"easy": 0.30, "medium": 0.45, "hard": 0.25}


@dataclass
class AgentPlan:
    """What one agent's file holds and how many copies of each base example to write."""

    agent: str
    before: dict[str, int] = field(default_factory=dict)
    """Base examples per difficulty in the input."""
    after: dict[str, int] = field(default_factory=dict)
    """Base examples per difficulty in the output (copies counted)."""
    copies: BaseCopies = field(default_factory=lambda: BaseCopies(0, ""))
    """How many times each kept base_id is written."""
    rows_before: int = 0
    rows_after: int = 0
    outside_target: int = 0
    notes: list[str] = field(default_factory=list)


def largest_remainder(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Split ``total`` into integers proportional to ``shares`` (which sum to 1)."""
    exact = {k: total * s for k, s in shares.items()}
    out = {k: math.floor(v + 1e-9) for k, v in exact.items()}
    left = total - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:max(0, left)]:
        out[k] += 1
    return out


def plan_counts(available: Mapping[str, int], target: Mapping[str, float],
                mode: Mode) -> tuple[dict[str, int], list[str]]:
    """Base examples to keep per difficulty so the mix matches ``target``."""
    notes = []
    usable = {d: t for d, t in target.items() if t > 0 and available.get(d, 0) > 0}
    missing = sorted(d for d, t in target.items() if t > 0 and available.get(d, 0) == 0)
    if missing:
        notes.append(f"no {', '.join(missing)} examples; target renormalized over the rest")
    if not usable:
        return {d: 0 for d in target}, notes
    norm = sum(usable.values())
    shares = {d: t / norm for d, t in usable.items()}
    if mode == "down":
        n = min(math.floor(available[d] / s + 1e-9) for d, s in shares.items())
    else:
        n = max(math.ceil(available[d] / s - 1e-9) for d, s in shares.items())
    counts = largest_remainder(n, shares)
    # rounding never crosses the bound that defined n, but keep the promise explicit
    for d in counts:
        counts[d] = min(counts[d], available[d]) if mode == "down" else max(counts[d], available[d])
    return {d: counts.get(d, 0) for d in target}, notes


def mix_of(counts: Mapping[str, int], target: Mapping[str, float]) -> tuple[dict[str, float], float]:
    """Shares of ``counts`` and the largest absolute gap to ``target``."""
    total = sum(counts.values())
    names = list(target) + [d for d in counts if d not in target]
    shares = {d: (counts.get(d, 0) / total if total else 0.0) for d in names}
    return shares, max((abs(shares[d] - target.get(d, 0.0)) for d in names), default=0.0)


def _order_key(seed: int, agent: str, base_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}|{agent}|{base_id}".encode(), digest_size=16).digest()


def _difficulty(row: Any) -> str | None:
    """The row's difficulty, or None when the row is unusable."""
    if not isinstance(row, dict) or not isinstance(row.get("base_id"), str) \
            or not isinstance(row.get("conversations"), list):
        return None
    d = row.get("difficulty")
    return d if isinstance(d, str) else "unknown"


class BaseCopies:
    """How many times each base example of one agent is written, in bounded memory.

    Per base: its difficulty, in a :class:`pipeline._spill.SpillMap` keyed by the 16-byte
    order key (spills to disk past a cap); per difficulty: the order keys in one byte
    array (16 bytes per base) until :meth:`choose` turns them into a rule. Writing
    ``want`` bases of ``n`` in key order, cycling, gives every base ``want // n`` copies
    plus one for the ``want % n`` first — those whose key is at most a cutoff key.
    """

    def __init__(self, seed: int, agent: str) -> None:
        self.seed, self.agent = seed, agent
        self._difficulty: SpillMap[bytes, str] = SpillMap()
        self._keys: dict[str, bytearray] = {}
        self._rule: dict[str, tuple[int, bytes | None]] = {}

    def see(self, base_id: str, difficulty: str) -> None:
        """Count a row; the first row of a base example fixes its difficulty."""
        key = _order_key(self.seed, self.agent, base_id)
        if self._difficulty.add(key, difficulty):
            self._keys.setdefault(difficulty, bytearray()).extend(key)

    def difficulties(self) -> list[str]:
        """Difficulties still to choose for, in first-seen order."""
        return list(self._keys)

    def counts(self) -> dict[str, int]:
        """Base examples per difficulty."""
        return {d: len(k) // 16 for d, k in sorted(self._keys.items())}

    def choose(self, difficulty: str, want: int) -> None:
        """Write ``want`` base examples of ``difficulty`` (0 drops them all)."""
        keys = self._keys.pop(difficulty)
        n = len(keys) // 16
        full, rem = divmod(want, n)
        cutoff = None
        if rem:
            words = np.frombuffer(bytes(keys), dtype=">u8").reshape(n, 2)
            order = np.lexsort((words[:, 1], words[:, 0]))  # = sorting the 16-byte keys
            cutoff = bytes(keys[16 * int(order[rem - 1]):16 * int(order[rem - 1]) + 16])
        self._rule[difficulty] = (full, cutoff)

    def get(self, base_id: str) -> int:
        """Copies of ``base_id`` to write (0 for bases not seen or not kept)."""
        key = _order_key(self.seed, self.agent, base_id)
        d = self._difficulty.get(key)
        rule = self._rule.get(d) if d is not None else None
        if rule is None:
            return 0
        full, cutoff = rule
        return full + (cutoff is not None and key <= cutoff)

    def close(self) -> None:
        """Release the spilled lookup."""
        self._difficulty.close()


def build_plan(path: Path, agent: str, target: Mapping[str, float], mode: Mode, seed: int,
               rejects: Rejects) -> AgentPlan:
    """First pass over one agent's file: count base examples and choose the copies."""
    plan = AgentPlan(agent, copies=BaseCopies(seed, agent))
    for line, row in iter_jsonl(path, rejects):
        d = _difficulty(row)
        if d is None:
            rejects.add(source=path, line=line, field="base_id", raw=str(row)[:2000],
                        reason="row needs a string 'base_id' and a 'conversations' list")
            continue
        plan.rows_before += 1
        plan.outside_target += d not in target
        plan.copies.see(row["base_id"], d)
    plan.before = plan.copies.counts()
    counts, plan.notes = plan_counts(plan.before, target, mode)
    for d in plan.copies.difficulties():  # first-seen order, as the report lists them
        want = counts.get(d, 0)
        plan.copies.choose(d, want)
        plan.after[d] = want
    return plan


def _kept_rows(path: Path, plan: AgentPlan) -> Iterator[dict[str, Any]]:
    """Second pass: the rows of the chosen base examples, repeated as planned."""
    # bad lines were reported in the first pass; this sink only keeps the reader going
    with tempfile.TemporaryDirectory() as tmp, Rejects(Path(tmp) / "again") as again:
        for _, row in iter_jsonl(path, again):
            d = _difficulty(row)
            if d is None:
                continue
            n = plan.copies.get(row["base_id"])
            if n == 0:
                continue
            yield row
            for copy in range(1, n):
                yield {**row, "id": f"{row.get('id', row['base_id'])}~up{copy}"}


def _check(target: Mapping[str, float], mode: str) -> None:
    if mode not in ("down", "up"):
        raise ParameterError(f"mode must be 'down' or 'up', got {mode!r}")
    if not target or any(not isinstance(v, int | float) or v < 0 for v in target.values()) \
            or abs(sum(target.values()) - 1.0) > 1e-6:
        raise ParameterError(f"target must be non-negative shares summing to 1, got {dict(target)!r}")


@step("rebalance", limits={"target": {"ge": 0, "total": 1}})
def rebalance(ctx: StepContext, *, in_dir: WsPath = DEFAULT_IN_DIR,
              out_dir: WsPath = DEFAULT_OUT_DIR, target: dict[str, float] = DEFAULT_TARGET,
              seed: int = 42, mode: Mode = "down", report: WsPath = DEFAULT_REPORT) -> StepResult:
    """Down- or up-sample each agent's rows by difficulty to the target mix; rewrite both formats."""
    _check(target, mode)
    root, out, report_path = ctx.path(in_dir), ctx.path(out_dir), ctx.path(report)
    files = data_files(root / "unsloth")
    if not files:
        raise InputError("no Unsloth files to rebalance", path=root / "unsloth")
    unsloth_out = {p: out / "unsloth" / p.name for p in files}
    openai_out = {p: out / "openai" / p.name for p in files}
    params = {"in_dir": in_dir, "out_dir": out_dir, "target": dict(target), "seed": seed,
              "mode": mode, "report": report}
    run = StepRun(ctx, "rebalance", params, inputs=files, seed=seed,
                  outputs=[*unsloth_out.values(), *openai_out.values(), report_path])
    if (cached := run.cached()) is not None:
        return cached

    plans, rejected, openai_rows = [], 0, 0
    for i, path in enumerate(files):
        ctx.report(f"rebalance: {path.stem}", i / len(files))
        target_path = unsloth_out[path]
        with Rejects(target_path) as rejects:
            plan = build_plan(path, path.stem, target, mode, seed, rejects)
        rejected += rejects.count
        with JsonlWriter(target_path) as writer:
            for row in _kept_rows(path, plan):
                writer.write_obj(row)
        plan.copies.close()
        plan.rows_after = writer.count
        run.record(target_path, rows=writer.count, sha256=writer.sha256, rejects=rejects.count,
                   extra={"before": plan.before, "after": plan.after})
        summary = write_openai_rows((row for _, row in iter_jsonl(target_path)),
                                    openai_out[path], seed=seed)
        openai_rows += int(summary["rows"])
        run.record(openai_out[path], rows=int(summary["rows"]), sha256=str(summary["sha256"]))
        plans.append(plan)
    ctx.report("rebalance: done", 1.0)
    metrics = _metrics(plans, target, openai_rows, rejected)
    atomic_write_text(report_path, render_rebalance(plans, target, mode, metrics))
    run.record(report_path)
    notes = [f"{p.agent}: {n}" for p in plans for n in p.notes]
    log.info("rebalance (%s): %s → %s rows", mode, metrics["rows_before"], metrics["rows_after"])
    return run.finish(metrics, notes)


def _metrics(plans: list[AgentPlan], target: Mapping[str, float], openai_rows: int,
             rejected: int) -> dict[str, MetricValue]:
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    for p in plans:
        for d, n in p.before.items():
            before[d] = before.get(d, 0) + n
        for d, n in p.after.items():
            after[d] = after.get(d, 0) + n
    shares_before, _ = mix_of(before, target)
    shares_after, _ = mix_of(after, target)
    m: dict[str, MetricValue] = {
        "agents": len(plans), "rows_before": sum(p.rows_before for p in plans),
        "rows_after": sum(p.rows_after for p in plans), "bases_before": sum(before.values()),
        "bases_after": sum(after.values()), "openai_rows": openai_rows,
        "rows_outside_target": sum(p.outside_target for p in plans), "rejects": rejected,
        "max_deviation_before": max((mix_of(p.before, target)[1] for p in plans), default=0.0),
        "max_deviation_after": max((mix_of(p.after, target)[1] for p in plans), default=0.0)}
    # The audit's figure for the deferred "Rebalance difficulty mix" item, measured on the output: the
    # largest per-agent gap bounds the audit's pooled one (a pooled mix is an average of the agents').
    m["difficulty_max_deviation"] = m["max_deviation_after"]
    for d in target:
        m[f"frac_before_{d}"] = shares_before.get(d, 0.0)
        m[f"frac_after_{d}"] = shares_after.get(d, 0.0)
    return m


def render_rebalance(plans: list[AgentPlan], target: Mapping[str, float], mode: str,
                     metrics: Mapping[str, MetricValue]) -> str:
    """Markdown before/after table per agent (base examples per difficulty)."""
    lines = [f"# Rebalance ({mode}-sampling to the target difficulty mix)", "",
             f"Rows {metrics['rows_before']} → {metrics['rows_after']}; largest deviation from "
             f"the target {metrics['max_deviation_before']:.4f} → "
             f"{metrics['max_deviation_after']:.4f}.", "",
             "| agent | difficulty | target | bases before | share before | bases after | "
             "share after |", "|---|---|---|---|---|---|---|"]
    for p in plans:
        sb, _ = mix_of(p.before, target)
        sa, _ = mix_of(p.after, target)
        for d in sb:
            lines.append(f"| {p.agent} | {d} | {target.get(d, 0.0):.2f} | {p.before.get(d, 0)} | "
                         f"{sb[d]:.4f} | {p.after.get(d, 0)} | {sa.get(d, 0.0):.4f} |")
    notes = [f"- {p.agent}: {n}" for p in plans for n in p.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"
