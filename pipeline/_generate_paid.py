"""The generate step's writer for paid providers: concurrent model calls, rows in index order.

Calls go through :func:`pipeline._ordered.ordered_map` (``concurrency`` in flight, a
window of ``2 × concurrency`` ahead of the writer). Exact duplicates are redrawn by the
writing thread in index order — the only place where the order of answers matters — so
the file's bytes never depend on ``concurrency``; a semaphore makes those redraws count
against the same limit.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import orjson

from coordinator import StepContext
from coordinator.core.errors import BudgetExceeded, TaskError
from coordinator.core.io import JsonlWriter
from pipeline._ordered import ordered_map
from pipeline.example_sources import ExampleSpec, PaidExampleSource, RawExample
from pipeline.gen_cache import CACHE_DIR

MAX_LLM_REDRAWS = 2
"""Paid redraws of an LLM example that exactly repeats an earlier one before it is kept as is."""


def digest(row: RawExample) -> bytes:
    """What makes two rows exact duplicates: their turns."""
    return hashlib.blake2b(orjson.dumps(row["turns"]), digest_size=16).digest()


def tally(stats: Counter[str], row: RawExample) -> None:
    """Count one written row into the step's metrics."""
    stats[row["difficulty"]] += 1
    stats[f"kind_{row['kind']}"] += 1
    stats["multi_turn"] += sum(t["role"] == "user" for t in row["turns"]) > 1
    stats["words"] += len(row["turns"][-1]["content"].split())


def write_agent_paid(ctx: StepContext, path: Path, agent: str, spec_of: Callable[[int], ExampleSpec], n: int,
                     provider: PaidExampleSource, concurrency: int) -> tuple[JsonlWriter, Counter[str]]:
    """Write one agent's file from concurrent model calls; a stop says that the answers so far are kept."""
    kept = f"answers received so far are cached in {ctx.rel(ctx.path(CACHE_DIR))}/ and a rerun pays only for the rest"
    try:
        return _write(ctx, path, agent, spec_of, n, provider, concurrency)
    except BudgetExceeded as e:
        raise BudgetExceeded(f"generate {agent!r} stopped: {e}; {kept}") from None
    except TaskError as e:
        raise TaskError(f"generate {agent!r} stopped at {e}; {kept}") from None


def _write(ctx: StepContext, path: Path, agent: str, spec_of: Callable[[int], ExampleSpec], n: int,
           provider: PaidExampleSource, concurrency: int) -> tuple[JsonlWriter, Counter[str]]:
    seen: set[bytes] = set()
    stats: Counter[str] = Counter()
    every = max(1, n // 20)
    slots = threading.Semaphore(concurrency)

    def call(i: int, draw: int) -> RawExample:
        with slots:
            return provider.draw(spec_of(i), draw)

    answers = ordered_map(lambda i: call(i, 0), range(n), concurrency, name=f"generate-{agent}")
    with JsonlWriter(path) as out, closing(answers):
        for i, row in enumerate(answers):
            redraws = 0
            while digest(row) in seen:  # a model repeating itself: ask again, in index order
                redraws += 1
                if redraws > MAX_LLM_REDRAWS:
                    stats["duplicates_kept"] += 1  # kept, and the audit counts it
                    break
                row = call(i, redraws)
            seen.add(digest(row))
            out.write_obj(row)
            tally(stats, row)
            if (i + 1) % every == 0:
                ctx.report(f"{agent}: {i + 1}/{n} examples", None)
    return out, stats
