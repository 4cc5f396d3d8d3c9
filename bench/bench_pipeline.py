"""Benchmark the week2 pipeline steps on 100k rows against an orjson read/write floor.

Two datasets, built by running the real steps on synthetic raw examples
(:mod:`pipeline_data`):

- ``cross``: 6,665 base examples of ~350 words → ``to_adp`` → ``build_sft`` with the
  default week2 matrix (5 agents, all pairs), 3 variants, no hold-out → 99,975 rows;
- ``unique``: 100,000 examples → identity matrix, 1 variant → 100,000 unique rows.

Every step runs in its own subprocess (``StepContext(force=True)``); its peak RSS is
that child's ``ru_maxrss`` from ``os.wait4``. Beside each step, in the same run, a
FLOOR child reads and parses the step's input files line by line with orjson and
serializes and writes (with fsync) the objects of its output files — the same bytes
in and out, no logic. Targets (issue 3): chain to_adp → build_sft → validate_openai →
audit ≤ 5× its floor on ``cross``; audit of ``unique`` ≤ 60 s; peak RSS ≤ 500 MB at
100k rows and not growing from 100k to 1M rows.

    python bench/bench_pipeline.py                 # 100k rows, both datasets
    python bench/bench_pipeline.py --rows 20000    # quicker
    python bench/bench_pipeline.py --million       # also 1M rows of each (≈ 1 h, ~20 GB disk)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline_data import AGENTS, IDENTITY_MATRIX, write_raw_examples

CHAIN = ("to_adp", "build_sft", "validate_openai", "audit")
RSS_LIMIT_MB = 500


def _files(ws: Path, *dirs: str) -> list[str]:
    from coordinator.core.io import data_files

    return [str(p) for d in dirs if (ws / d).is_dir() for p in data_files(ws / d)]


def plan(shape: str, rows: int) -> tuple[int, list[tuple[str, dict[str, Any], list[str], list[str]]]]:
    """Raw examples per agent and the steps ``(name, params, input dirs, output dirs)`` of a dataset."""
    sft_outs = ["data/sft/unsloth", "data/sft/openai", "data/heldout"]
    if shape == "cross":
        per_agent = max(1, round(rows / (len(AGENTS) ** 2 * 3)))
        steps = [
            ("generate", {"agents": list(AGENTS), "examples_per_agent": per_agent,
                          "out_dir": "data/generated_offline"}, [], ["data/generated_offline"]),
            ("to_adp", {}, ["data/generated_examples"], ["data/adp"]),
            ("build_sft", {"variants": 3, "holdout_fraction": 0.0}, ["data/adp"], sft_outs),
            ("validate_openai", {}, ["data/sft/openai"], []),
            ("audit", {}, ["data/sft/unsloth"], []),
            ("scrub_pii", {}, ["data/sft/unsloth", "data/sft/openai"],
             ["data/sft_scrubbed/unsloth", "data/sft_scrubbed/openai"]),
            ("rebalance", {}, ["data/sft_scrubbed/unsloth"],
             ["data/sft_final/unsloth", "data/sft_final/openai"]),
            ("finetune", {"agent": "qa", "train_dir": "data/sft_final"}, ["data/sft_final/openai"], []),
        ]
    else:
        per_agent = max(1, rows // len(AGENTS))
        steps = [
            ("to_adp", {}, ["data/generated_examples"], ["data/adp"]),
            ("build_sft", {"variants": 1, "holdout_fraction": 0.0, "compatibility": "identity.yaml"},
             ["data/adp"], sft_outs),
            ("validate_openai", {}, ["data/sft/openai"], []),
            ("audit", {}, ["data/sft/unsloth"], []),
        ]
    return per_agent, steps


# ---------------------------------------------------------------- child processes

def child_step(ws: Path, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one registered step (forced) and return its time and metrics."""
    from coordinator.core.step import STEPS, StepContext

    spec = STEPS.get(name)
    t0 = time.perf_counter()
    result = spec.fn(StepContext(ws, force=True), **params)
    return {"seconds": time.perf_counter() - t0, "metrics": result.metrics}


def child_floor(inputs: list[str], outputs: list[str], scratch: Path) -> dict[str, Any]:
    """Parse every input line; re-serialize and write (fsync) every output object. Timed, no logic."""
    t0 = time.perf_counter()
    for f in inputs:
        with open(f, "rb", buffering=1 << 20) as fh:
            for line in fh:
                orjson.loads(line)
    seconds = time.perf_counter() - t0
    opt = orjson.OPT_APPEND_NEWLINE
    scratch.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(outputs):
        with open(f, "rb", buffering=1 << 20) as fh:
            # parsing the output only to have its objects is not the floor's work: untimed
            objs = (orjson.loads(line) for line in fh)
            t0 = time.perf_counter()
            with open(scratch / f"{k}.jsonl", "wb", buffering=1 << 20) as out:
                spent = 0.0
                for obj in objs:
                    t1 = time.perf_counter()
                    out.write(orjson.dumps(obj, option=opt))
                    spent += time.perf_counter() - t1
                t1 = time.perf_counter()
                out.flush()
                os.fsync(out.fileno())
                spent += time.perf_counter() - t1
            seconds += spent
        (scratch / f"{k}.jsonl").unlink()
    return {"seconds": seconds}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run a job in a fresh interpreter; add its own peak RSS (MB) from wait4."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", orjson.dumps(job).decode()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {job}")
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    result["rss_mb"] = usage.ru_maxrss / 1024
    return result


# ---------------------------------------------------------------- driver

def bench_dataset(shape: str, rows: int, tmp: Path, words: int) -> list[dict[str, Any]]:
    """Build one dataset, then time every step and its floor; rows of the result table."""
    ws = tmp / f"{shape}-{rows}"
    per_agent, steps = plan(shape, rows)
    t0 = time.perf_counter()
    raw = write_raw_examples(ws / "data/generated_examples", per_agent, words=words)
    (ws / "identity.yaml").write_text(IDENTITY_MATRIX)
    print(f"[{shape} {rows}] raw examples: {per_agent * len(AGENTS)} ({raw / 1e6:.0f} MB) "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    table = []
    for name, params, ins, outs in steps:
        res = run_child({"kind": "step", "ws": str(ws), "step": name, "params": params})
        floor = run_child({"kind": "floor", "inputs": _files(ws, *ins),
                           "outputs": _files(ws, *outs), "scratch": str(tmp / "floor")})
        m = res["metrics"]
        n = next((m[k] for k in ("rows", "rows_after", "examples", "trajectories") if k in m), "")
        row = {"dataset": shape, "scale": rows, "step": name, "rows": n, "seconds": res["seconds"],
               "floor": floor["seconds"], "rss_mb": res["rss_mb"], "metrics": m}
        table.append(row)
        print(f"[{shape} {rows}] {name}: {res['seconds']:.1f} s (floor {floor['seconds']:.1f} s), "
              f"peak RSS {res['rss_mb']:.0f} MB", flush=True)
    shutil.rmtree(ws)
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    """Markdown table of every step plus the chain per dataset, then the target checks."""
    print("\n| dataset | scale | step | rows | seconds | floor s | × floor | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        ratio = r["seconds"] / r["floor"] if r["floor"] > 0.05 else float("nan")
        print(f"| {r['dataset']} | {r['scale']:,} | {r['step']} | {r['rows']} | {r['seconds']:.1f} | "
              f"{r['floor']:.1f} | {ratio:.1f} | {r['rss_mb']:.0f} |")
    checks = []
    for (shape, scale) in dict.fromkeys((r["dataset"], r["scale"]) for r in table):
        chain = [r for r in table if (r["dataset"], r["scale"]) == (shape, scale) and r["step"] in CHAIN]
        secs, floor = sum(r["seconds"] for r in chain), sum(r["floor"] for r in chain)
        rss = max(r["rss_mb"] for r in chain)
        print(f"| {shape} | {scale:,} | **chain** | | {secs:.1f} | {floor:.1f} | {secs / floor:.1f} | "
              f"{rss:.0f} |")
        if shape == "cross":
            checks.append((f"chain ≤ 5× floor ({shape} {scale:,})", secs / floor <= 5,
                           f"{secs / floor:.2f}×"))
        if shape == "unique":
            audit = next(r for r in chain if r["step"] == "audit")
            checks.append((f"audit ≤ 60 s ({shape} {scale:,})", audit["seconds"] <= 60,
                           f"{audit['seconds']:.1f} s, {audit['metrics'].get('near_dup_pairs')} near-dup pairs"))
    for scale in dict.fromkeys(r["scale"] for r in table):
        peak = max(r["rss_mb"] for r in table if r["scale"] == scale)
        checks.append((f"peak RSS ≤ {RSS_LIMIT_MB} MB ({scale:,} rows)", peak <= RSS_LIMIT_MB,
                       f"{peak:.0f} MB"))
    scales = sorted(dict.fromkeys(r["scale"] for r in table))
    if len(scales) > 1:
        lo, hi = scales[0], scales[-1]
        for r in (r for r in table if r["scale"] == hi):
            base = next((b for b in table if b["scale"] == lo and b["dataset"] == r["dataset"]
                         and b["step"] == r["step"]), None)
            if base is not None:
                # "not growing": within 10 % or 25 MB of the small run, whichever is larger
                ok = r["rss_mb"] <= max(base["rss_mb"] * 1.10, base["rss_mb"] + 25)
                checks.append((f"RSS flat {lo:,}→{hi:,}: {r['dataset']} {r['step']}", ok,
                               f"{base['rss_mb']:.0f} → {r['rss_mb']:.0f} MB"))
    print()
    for name, ok, value in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value}")


def main() -> None:
    """Parse arguments; as a child run one job, else the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="also measure 1,000,000 rows once")
    parser.add_argument("--words", type=int, default=350)
    parser.add_argument("--datasets", default="cross,unique")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = orjson.loads(args.child)
        if job["kind"] == "step":
            out = child_step(Path(job["ws"]), job["step"], job["params"])
        else:
            out = child_floor(job["inputs"], job["outputs"], Path(job["scratch"]))
        sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_NON_STR_KEYS) + b"\n")
        return
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    scales = [args.rows] + ([1_000_000] if args.million else [])
    table: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        for scale in scales:
            for shape in args.datasets.split(","):
                table += bench_dataset(shape, scale, Path(tmp), args.words)
    print_table(table)


if __name__ == "__main__":
    main()
