"""Generate with a paid provider: wall time by concurrency against the loopback server.

The fake Anthropic server (tests/fakes/llm_server.py) waits ``--latency`` seconds per
call (the stand-in for model time) and answers from the prompt alone, so every run
asks for the same answers. Its answers always make one tool call, so each row carries
its own call ids and no two rows are exact duplicates — like a real model at
temperature 1, and unlike the tests' fake, whose repeated chat answers are redrawn
(serially, in index order) and so would measure redraws rather than concurrency. Each concurrency level runs in a fresh workspace (empty
answer cache) with a real ledger and budget; the script checks that every level wrote
the same bytes and that ledger rows equal the server's request count.

Usage: python bench/bench_generate_llm.py [--examples 300] [--latency 0.2] [--levels 1,4,8,16]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.core.plan import Budget
from coordinator.core.step import StepContext
from coordinator.engine.budget import RunBudget
from coordinator.engine.ledger import Ledger
from pipeline.generate import generate
from tests.fakes.llm_server import FakeLLMServer
from tests.roles.test_generate_concurrency import MODEL, _answer


def tool_answer(body: dict) -> str:
    """The tests' answer for this prompt, always in the shape with one tool call."""
    example = json.loads(_answer({"messages": [{"content": body["messages"][0]["content"] + " calls one tool"}]}))
    return json.dumps(example)


def one_run(srv: FakeLLMServer, n: int, concurrency: int) -> tuple[float, str, int, int, int]:
    """Seconds, output sha256, server calls, ledger rows, peak in-flight of one fresh run."""
    ws = Path(tempfile.mkdtemp(prefix=f"bench-gen-{concurrency}-"))
    spend = RunBudget(Ledger.of(ws / ".coord"), "bench", Budget(usd=100.0), {}).for_task("generate", "lead", "claude")
    srv.completions = srv.max_in_flight = 0
    started = time.perf_counter()
    generate(StepContext(workspace=ws, spend=spend), agents=["qa"], examples_per_agent=n, provider="anthropic",
             model=MODEL, concurrency=concurrency)
    seconds = time.perf_counter() - started
    sha = hashlib.sha256((ws / "data/generated_examples/qa.jsonl").read_bytes()).hexdigest()
    rows = len(Ledger.of(ws / ".coord").calls("bench"))
    return seconds, sha, srv.completions, rows, srv.max_in_flight


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the server spends on each call")
    ap.add_argument("--levels", default="1,4,8,16")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with FakeLLMServer() as srv:
        os.environ["ANTHROPIC_API_KEY"] = "sk-ant-bench-000000"
        os.environ["ANTHROPIC_BASE_URL"] = srv.anthropic_url
        srv.reply_fn = tool_answer
        srv.latency_s = args.latency
        import anthropic  # noqa: F401  (import time is not generation time)

        print(f"{args.examples} examples, {args.latency * 1000:.0f} ms per call, load {os.getloadavg()[0]:.1f}")
        print("| concurrency | calls | seconds | calls/s | speedup | peak in flight | ledger rows = calls |")
        print("|---|---|---|---|---|---|---|")
        base = None
        shas = set()
        for c in levels:
            seconds, sha, calls, rows, peak = one_run(srv, args.examples, c)
            base = base or seconds
            shas.add(sha)
            print(f"| {c} | {calls} | {seconds:.1f} | {calls / seconds:.1f} | {base / seconds:.1f}× | {peak} | "
                  f"{'yes' if rows == calls else f'NO ({rows})'} |")
        print("same bytes at every level:", "yes" if len(shas) == 1 else f"NO ({len(shas)} different files)")


if __name__ == "__main__":
    main()
