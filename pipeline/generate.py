"""Step ``generate``: raw examples per agent → ``data/generated_examples/<agent>.jsonl``.

Each agent gets ``examples_per_agent`` rows (format: docs/formats.md, "Raw generated
examples") spread evenly over its five task categories, with exact difficulty counts
from ``difficulty_mix`` (largest remainder). The default ``offline`` provider is a
labeled deterministic stand-in for an LLM (every row says ``"provider": "offline"``);
see :mod:`pipeline.example_sources`.

Each agent file has its own seed derived from ``(seed, agent)``, so adding an agent
never changes another agent's bytes. Same parameters → byte-identical files.

Planted variety (offline provider), so the audit has real things to find:

- kinds by per-agent weights (chat / code with fenced blocks or a code_call / tool
  with tool_call + tool result); chat turns get a follow-up user turn at 15/25/35 %
  (easy/medium/hard);
- ``PII_RATE`` 2.5 % of examples carry an email and/or an international phone number;
- decoys that are not PII appear in most user turns: versions (2.14.1), dates
  (2024-03-15), private IPs (192.168.1.20), prices ($1,299.00), order ids
  (ORD-2024-004512);
- ``TOO_SHORT_RATE`` 0.75 % too-short answers and ``NO_END_PUNCT_RATE`` 0.75 % answers
  without end punctuation;
- ``NEAR_DUP_RATE`` 1 % near-duplicates: light edits of a recent example of the same
  agent (same difficulty); exact duplicates never happen (a digest guard regenerates).

Counts are ``round(n × rate)`` per agent and disjoint.

With an LLM provider (``anthropic``, ``openai``, ``openai_compatible``) every example is
one paid call, and ``concurrency`` of them (default 8) are in flight at once: a sliding
window of ``2 × concurrency`` examples ahead of the writer, never all of them. Rows are
still written in index order and redraws of exact duplicates happen in that order, so
the file's bytes do not depend on ``concurrency``. Every answer is appended (and
fsynced) to ``.coord/cache/generate/<provider>/<model>/<agent>.jsonl`` as it arrives,
so a step that fails, is killed or is held by the budget half-way pays on its rerun
only for the answers it is missing (see :mod:`pipeline.gen_cache`). When the budget
runs out mid-step no new call starts; calls already running finish and are recorded,
and the step is held until ``coord budget raise``. The offline provider ignores
``concurrency``.

Metrics: ``examples``, ``agents``, ``easy``, ``medium``, ``hard``, ``multi_turn``,
``tool_examples``, ``code_examples``, ``pii_seeded``, ``near_dup_seeded``,
``too_short_seeded``, ``no_end_punct_seeded``, ``words_mean`` (mean words of the
final assistant answer).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
from collections import Counter, deque
from pathlib import Path

import orjson

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import ParameterError
from coordinator.core.io import JsonlWriter
from pipeline import offline_corpus as oc
from pipeline._generate_paid import MAX_LLM_REDRAWS, digest, tally, write_agent_paid
from pipeline.example_sources import (
    DIFFICULTIES,
    KINDS,
    Difficulty,
    ExampleSource,
    ExampleSpec,
    Kind,
    PaidExampleSource,
    RawExample,
    Trait,
    call_id,
)
from pipeline.gen_cache import CACHE_DIR
from pipeline.llm_examples import example_source
from pipeline.provenance import examples_note, examples_paid, examples_provenance

log = logging.getLogger(__name__)

DEFAULT_MIX: dict[str, float] = {"easy": 0.30, "medium": 0.45, "hard": 0.25}
PII_RATE = 0.025
TOO_SHORT_RATE = 0.0075
NO_END_PUNCT_RATE = 0.0075
NEAR_DUP_RATE = 0.01
TRAIT_RATES: tuple[tuple[Trait, float], ...] = (
    ("pii", PII_RATE), ("too_short", TOO_SHORT_RATE), ("no_end_punct", NO_END_PUNCT_RATE))
NEAR_DUP_WINDOW = 200
"""Near-duplicates copy one of the last this-many regular examples (bounded memory)."""
DEFAULT_OUT_DIR = WsPath("data/generated_examples")
DEFAULT_CONCURRENCY = 8
"""Model calls in flight at once with an LLM provider (well under the usual per-minute rate limits)."""
MAX_CONCURRENCY = 64
_AGENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def derive_seed(seed: int, agent: str) -> int:
    """Per-agent seed from the user seed and the agent name (stable across runs and Pythons)."""
    h = hashlib.sha256(f"generate:{seed}:{agent}".encode()).digest()
    return int.from_bytes(h[:8], "big")


def mix_counts(n: int, mix: dict[str, float]) -> dict[Difficulty, int]:
    """Exact counts per difficulty summing to ``n`` (largest remainder, ties in easy→hard order)."""
    quotas = {d: n * mix.get(d, 0.0) for d in DIFFICULTIES}
    counts = {d: math.floor(q) for d, q in quotas.items()}
    short = n - sum(counts.values())
    by_remainder = sorted(DIFFICULTIES, key=lambda d: (-(quotas[d] - counts[d]), DIFFICULTIES.index(d)))
    for d in by_remainder[:short]:
        counts[d] += 1
    return counts


def rate_count(n: int, rate: float) -> int:
    """``round(n × rate)`` with halves rounded up."""
    return int(n * rate + 0.5)


def _check_mix(mix: dict[str, float] | None) -> dict[str, float]:
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = sorted(set(mix) - set(DIFFICULTIES))
    if unknown:
        raise ParameterError(f"difficulty_mix has unknown keys {unknown}; allowed: {list(DIFFICULTIES)}")
    if any(not isinstance(v, int | float) or not math.isfinite(v) or v < 0 for v in mix.values()):
        raise ParameterError(f"difficulty_mix values must be finite numbers ≥ 0, got {mix}")
    if abs(sum(mix.values()) - 1.0) > 1e-6:
        raise ParameterError(f"difficulty_mix must sum to 1, got {sum(mix.values()):.6f}")
    return {d: float(mix.get(d, 0.0)) for d in DIFFICULTIES}


def _check_agents(agents: list[str], extra_agents: list[str]) -> None:
    if not agents:
        raise ParameterError("agents must name at least one agent")
    bad = [a for a in [*agents, *extra_agents] if not isinstance(a, str) or not _AGENT_NAME.match(a)]
    if bad:
        raise ParameterError(f"agent names must match {_AGENT_NAME.pattern}: {bad}")
    dups = sorted(a for a, c in Counter(agents).items() if c > 1)
    if dups:
        raise ParameterError(f"agents listed twice: {dups}")
    unknown = [a for a in agents if a not in oc.AGENTS and a not in extra_agents]
    if unknown:  # a typo must not become a new agent with made-up examples
        raise ParameterError(f"agents {unknown} are not built-in agents ({', '.join(oc.AGENTS)}); an agent "
                             "of your own must also be listed in extra_agents")


class _Plan:
    """Per-example choices for one agent file, drawn up front from the agent's rng."""

    def __init__(self, agent: str, n: int, seed: int, mix: dict[str, float], rng: random.Random,
                 plants: bool) -> None:
        corpus = oc.corpus_for(agent)
        counts = mix_counts(n, mix)
        self.difficulties: list[Difficulty] = [d for d in DIFFICULTIES for _ in range(counts[d])]
        rng.shuffle(self.difficulties)
        cats = list(corpus.categories)
        self.categories = [cats[i % len(cats)] for i in range(n)]
        rng.shuffle(self.categories)
        self.kinds: list[Kind] = rng.choices(KINDS, weights=corpus.kind_weights, k=n)
        self.traits: dict[int, frozenset[Trait]] = {}
        self.near_dups: set[int] = set()
        self.agent, self.seed = agent, seed
        if not plants:
            return
        start = min(20, n)  # near-duplicates need earlier examples to copy
        self.near_dups = set(rng.sample(range(start, n), min(rate_count(n, NEAR_DUP_RATE), n - start)))
        rest = [i for i in range(n) if i not in self.near_dups]
        wanted: list[Trait] = [t for t, rate in TRAIT_RATES for _ in range(rate_count(n, rate))]
        for i, trait in zip(rng.sample(rest, min(len(wanted), len(rest))), wanted, strict=False):
            self.traits[i] = frozenset({trait})

    def spec(self, i: int) -> ExampleSpec:
        return ExampleSpec(self.agent, self.categories[i], self.difficulties[i], self.kinds[i], i, self.seed,
                           self.traits.get(i, frozenset()))


def near_duplicate(src: RawExample, spec: ExampleSpec, rng: random.Random) -> RawExample:
    """A light edit of ``src`` under ``spec``'s id: reworded request, a word or two swapped in the answer."""
    turns = orjson.loads(orjson.dumps(src["turns"]))
    ids: dict[str, str] = {}
    for turn in turns:
        for key in ("tool_call", "code_call"):
            if key in turn:
                new = call_id(spec.index, len(ids))
                ids[turn[key]["id"]] = new
                turn[key]["id"] = new
        if "tool_call_id" in turn:
            turn["tool_call_id"] = ids.get(turn["tool_call_id"], turn["tool_call_id"])
    first = turns[0]["content"]
    turns[0]["content"] = rng.choice(oc.NEAR_DUP_PREFIXES) + first[:1].lower() + first[1:]
    answer = turns[-1]["content"]
    present = [pair for pair in oc.NEAR_DUP_SWAPS if pair[0] in answer]
    for old, new in rng.sample(present, min(2, len(present))):
        answer = answer.replace(old, new, 1)
    turns[-1]["content"] = answer
    return {**src, "id": spec.id, "turns": turns}


def _write_agent(path: Path, agent: str, n: int, seed: int, mix: dict[str, float],
                 provider: ExampleSource) -> tuple[JsonlWriter, Counter[str]]:
    """Write one agent's file; return the writer (rows, sha256) and the counters."""
    rng = random.Random(derive_seed(seed, agent))
    plan = _Plan(agent, n, seed, mix, rng, provider.plants_traits)
    seen: set[bytes] = set()
    recent: deque[RawExample] = deque(maxlen=NEAR_DUP_WINDOW)
    stats: Counter[str] = Counter()
    with JsonlWriter(path) as out:
        for i in range(n):
            spec = plan.spec(i)
            row = None
            if i in plan.near_dups:
                same = [r for r in recent if r["difficulty"] == spec.difficulty and r["category"] == spec.category]
                same = same or [r for r in recent if r["difficulty"] == spec.difficulty]
                if same:
                    source = rng.choice(same)
                    recent.remove(source)  # one copy per source keeps near-dup clusters to pairs
                    row = near_duplicate(source, spec, rng)
                    stats["near_dup_seeded"] += 1
            if row is None or digest(row) in seen:
                row = provider.example(spec, rng)
                redraws = 0
                while digest(row) in seen:  # astronomically rare offline; redraw from the same stream
                    redraws += 1
                    if redraws > MAX_LLM_REDRAWS and not provider.plants_traits:
                        stats["duplicates_kept"] += 1  # a model repeating itself: kept, and the audit counts it
                        break
                    row = provider.example(spec, rng)
                for trait in spec.traits:
                    stats[f"{trait}_seeded"] += 1
                if not spec.traits:
                    recent.append(row)
            seen.add(digest(row))
            out.write_obj(row)
            tally(stats, row)
    return out, stats


@step("generate", limits={"agents": {"min_size": 1, "unique": True, "pattern": _AGENT_NAME.pattern,
                                     "choices": tuple(oc.AGENTS), "choices_from": "extra_agents"},
                          "extra_agents": {"unique": True, "pattern": _AGENT_NAME.pattern},
                          "examples_per_agent": (1, None), "concurrency": (1, MAX_CONCURRENCY),
                          "provider": {"choices": ("offline", "anthropic", "openai", "openai_compatible")},
                          "difficulty_mix": {"ge": 0, "total": 1, "keys": DIFFICULTIES}},
      paid=examples_paid, provenance=examples_provenance, board_note=examples_note)
def generate(ctx: StepContext, *, agents: list[str], examples_per_agent: int = 1333, seed: int = 42,
             provider: str = "offline", out_dir: WsPath = DEFAULT_OUT_DIR,
             difficulty_mix: dict[str, float] | None = None, model: str | None = None,
             concurrency: int = DEFAULT_CONCURRENCY, extra_agents: list[str] | None = None) -> StepResult:
    """Generate raw examples for every agent (``difficulty_mix`` defaults to 30/45/25 %).

    ``agents`` are the built-in ones (:data:`pipeline.offline_corpus.AGENTS`) and any listed in
    ``extra_agents``: agents of a team's own, named on purpose (the offline provider gives them
    generic task categories), so a misspelt name is refused instead of becoming a new agent.
    ``concurrency`` is how many model calls an LLM provider keeps in flight; it never changes
    the output, so it is not part of the step's cache key (nor is ``extra_agents``).
    """
    _check_agents(agents, list(extra_agents or []))
    if not isinstance(examples_per_agent, int) or isinstance(examples_per_agent, bool) or examples_per_agent < 1:
        raise ParameterError(f"examples_per_agent must be a positive integer, got {examples_per_agent!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ParameterError(f"seed must be an integer, got {seed!r}")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ParameterError(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}, got {concurrency!r}")
    mix = _check_mix(difficulty_mix)
    prov = example_source(provider, model=model, spend=ctx.spend, cache_dir=ctx.path(CACHE_DIR))
    out = ctx.path(out_dir)
    outputs = [out / f"{a}.jsonl" for a in agents]
    params = {"agents": list(agents), "examples_per_agent": examples_per_agent, "seed": seed,
              "provider": provider, "out_dir": str(out_dir), "difficulty_mix": mix}
    if model is not None:
        params["model"] = model
    run = StepRun(ctx, "generate", params, inputs=[], outputs=outputs, seed=seed, provider=provider)
    if (cached := run.cached()) is not None:
        return cached
    paid = prov if isinstance(prov, PaidExampleSource) else None
    plans: dict[str, _Plan] = {}
    if paid is not None:
        plans = {a: _Plan(a, examples_per_agent, seed, mix, random.Random(derive_seed(seed, a)), False)
                 for a in agents}
        missing = sum(paid.uncached(p.spec(i) for i in range(examples_per_agent)) for p in plans.values())
        if missing:  # paid providers refuse to start past the budget; cached answers cost nothing
            paid.check_budget(missing)
        log.info("generate: %d of %d examples already answered (cache); %d to ask for",
                 examples_per_agent * len(agents) - missing, examples_per_agent * len(agents), missing)
    total: Counter[str] = Counter()
    for k, (agent, path) in enumerate(zip(agents, outputs, strict=True)):
        ctx.report(f"generating {examples_per_agent} examples for {agent!r}", k / len(agents))
        if paid is None:
            writer, stats = _write_agent(path, agent, examples_per_agent, seed, mix, prov)
        else:
            writer, stats = write_agent_paid(ctx, path, agent, plans[agent].spec, examples_per_agent, paid,
                                             concurrency)
        run.record(path, rows=writer.count, sha256=writer.sha256)
        total.update(stats)
        log.info("generate: %s → %s (%d rows)", agent, ctx.rel(path), writer.count)
    n = examples_per_agent * len(agents)
    metrics: dict[str, MetricValue] = {"examples": n, "agents": len(agents),
               "easy": total["easy"], "medium": total["medium"], "hard": total["hard"],
               "multi_turn": total["multi_turn"], "tool_examples": total["kind_tool"],
               "code_examples": total["kind_code"], "pii_seeded": total["pii_seeded"],
               "near_dup_seeded": total["near_dup_seeded"], "too_short_seeded": total["too_short_seeded"],
               "no_end_punct_seeded": total["no_end_punct_seeded"],
               "words_mean": round(total["words"] / n, 1),
               # provenance: reports say plainly which provider (and model) wrote the examples
               "provider": provider, "model": getattr(prov, "model", None) or "offline-templates"}
    if total["duplicates_kept"]:
        metrics["duplicates_kept"] = total["duplicates_kept"]
    return run.finish(metrics)
