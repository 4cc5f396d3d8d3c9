"""Benchmark the audit step on a synthetic 100k-row training set.

Writes ``--rows`` rows of ~``--words`` words each (every row its own base example, so
every text is unique and goes through MinHash LSH), with planted near duplicates,
emails, phone numbers and PII look-alikes, into a temporary workspace; then times
``audit`` on it, alternating ``--repeat`` times with its FLOOR in the same process
(read the same files and parse every line with orjson: what any audit must do), and
prints seconds, CPU seconds, the load average, throughput and peak RSS.

    python bench/bench_audit.py                # 100,000 rows × ~350 words
    python bench/bench_audit.py --rows 20000   # quicker
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.core.step import StepContext
from pipeline.audit import audit

AGENTS = ("qa", "support", "legal", "analyst", "content")
DIFFICULTIES = ("easy", "medium", "hard")
SYLLABLES = ("ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po", "zu", "fe", "ga", "ri")


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """Pronounceable letter-only words (no digits, so they never look like PII)."""
    picks = rng.integers(0, len(SYLLABLES), size=(size, 3))
    return sorted({"".join(SYLLABLES[i] for i in row) for row in picks})


def write_dataset(root: Path, rows: int, words: int, seed: int = 7) -> dict[str, int]:
    """Write the synthetic Unsloth files; return what was planted."""
    rng = np.random.default_rng(seed)
    vocab = np.array(vocabulary(3000, rng))
    # Zipf-like word frequencies, as in real text: common words make shingles collide
    ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
    probs = (1 / ranks) / (1 / ranks).sum()
    planted = {"near_dups": 0, "emails": 0, "phones": 0}
    root.mkdir(parents=True, exist_ok=True)
    handles = {a: (root / f"{a}.jsonl").open("wb") for a in AGENTS}
    previous = ""
    try:
        for i in range(rows):
            body = " ".join(vocab[rng.choice(len(vocab), size=words, p=probs)])
            if i % 500 == 7:  # a near duplicate of the previous row under another base id
                w = previous.split()
                for j in (10, 150, 300):
                    if j < len(w):
                        w[j] = "changed"
                body = " ".join(w)
                planted["near_dups"] += 1
            previous = body
            human = f"Release 2.14.1 shipped on 2024-03-15 for $1,299.00 (ORD-2024-{i:06d})."
            if i % 50 == 0:
                human += f" Mail user{i}@example.com or call +44 20 7946 {i % 10000:04d}."
                planted["emails"] += 1
                planted["phones"] += 1
            agent = AGENTS[i % len(AGENTS)]
            row = {"id": f"{agent}<-b{i:06d}#0", "weight": 1.0, "target_agent": agent,
                   "source_agent": agent, "base_id": f"b{i:06d}", "category": "bench",
                   "difficulty": DIFFICULTIES[i % 3], "variant": 0,
                   "conversations": [{"from": "system", "value": f"You are the {agent} agent."},
                                     {"from": "human", "value": human},
                                     {"from": "gpt", "value": body + "."}]}
            handles[agent].write(orjson.dumps(row) + b"\n")
    finally:
        for fh in handles.values():
            fh.close()
    return planted


def floor(files: list[Path]) -> float:
    """Seconds to read and parse every line of ``files`` with orjson (the audit's floor)."""
    t0 = time.perf_counter()
    for path in files:
        with path.open("rb", buffering=1 << 20) as fh:
            for line in fh:
                orjson.loads(line)
    return time.perf_counter() - t0


def main() -> None:
    """Generate, audit, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=350)
    parser.add_argument("--repeat", type=int, default=2, help="audit/floor pairs, alternating")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_audit_") as tmp:
        ws = Path(tmp)
        t0 = time.perf_counter()
        planted = write_dataset(ws / "data/sft/unsloth", args.rows, args.words)
        size = sum(p.stat().st_size for p in (ws / "data/sft/unsloth").glob("*.jsonl"))
        print(f"generated {args.rows} rows ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s;"
              f" planted {planted}")
        files = sorted((ws / "data/sft/unsloth").glob("*.jsonl"))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        runs: list[tuple[float, float, float]] = []
        floors: list[tuple[float, float]] = []
        for _ in range(args.repeat):
            load = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), time.process_time()
            result = audit(StepContext(ws, force=True))
            runs.append((time.perf_counter() - t0, time.process_time() - c0, load))
            load = os.getloadavg()[0]
            floors.append((floor(files), load))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = statistics.median(r[0] for r in runs)
    floor_s = statistics.median(f[0] for f in floors)
    loads = [r[2] for r in runs] + [f[1] for f in floors]
    print(f"audit: {seconds:.1f} s median of {len(runs)} ({', '.join(f'{r[0]:.1f}' for r in runs)}; CPU "
          f"{', '.join(f'{r[1]:.1f}' for r in runs)} s), {args.rows / seconds:,.0f} rows/s · floor "
          f"{floor_s:.2f} s ({seconds / floor_s:.0f}×) · load {min(loads):.1f}–{max(loads):.1f} on "
          f"{os.cpu_count()} CPUs · peak RSS {rss:.0f} MB (before audit {rss_before:.0f} MB)")
    m = result.metrics
    keys = ("rows", "unique_texts", "near_dup_pairs", "exact_dup_rows", "pii_email_rows",
            "pii_phone_rows", "too_short_rows", "no_end_punct_rows", "difficulty_max_deviation")
    print({k: m[k] for k in keys})


if __name__ == "__main__":
    main()
