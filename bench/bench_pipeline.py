"""Benchmark the week2 pipeline steps on 100k rows beside an orjson read/write floor.

Two datasets, built by running the real steps on synthetic raw examples
(:mod:`pipeline_data`):

- ``cross``: 6,665 base examples of ~350 words → ``to_adp`` → ``build_sft`` with the
  default week2 matrix (5 agents, all pairs), 3 variants, no hold-out → 99,975 rows;
- ``unique``: 100,000 examples → identity matrix, 1 variant → 100,000 unique rows.

Every step runs in its own subprocess (``StepContext(force=True)``); its peak RSS is
that child's ``ru_maxrss`` from ``os.wait4``. Right after each step, in the same run,
a FLOOR child does the least any program must do with the same bytes: read the step's
input files and parse every line with ``orjson.loads``, then ``orjson.dumps`` every
object of its output files, write them and fsync (the objects are parsed beforehand,
in batches, outside the timed part). Step and floor alternate ``--repeat`` times, and
each measurement carries the 1-minute load average when it started, so a busy machine
shows in the table instead of in the ratio. The chain is to_adp → build_sft →
validate_openai → audit; its ratio is taken per repeat (the sum of the steps over the
sum of their floors) and reported as median and range.

Targets (issue 16): chain ≤ 4× its floor on ``cross``; audit of ``unique`` ≤ 20 s;
peak RSS ≤ 250 MB at 100k rows and within +10 % from 100k to 1M rows.

    python bench/bench_pipeline.py                 # 100k rows, both datasets, 3 repeats
    python bench/bench_pipeline.py --rows 20000    # quicker
    python bench/bench_pipeline.py --million       # also 1M rows of each (≈ 1 h, ~20 GB disk)

To measure a few steps again and again without rebuilding the data, ``--workdir DIR`` keeps
each dataset in ``DIR/<dataset>-<rows>`` (reused by the next run that names the same
directory) and ``--steps audit`` times only the steps named; the steps before the last one
named run once, untimed, where the kept dataset has not run them yet:

    python bench/bench_pipeline.py --rows 1000000 --datasets unique --workdir /tmp/bp --steps audit
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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
CHAIN_TARGET = 4.0
AUDIT_UNIQUE_TARGET_S = 20.0
RSS_LIMIT_MB = 250
RSS_GROWTH = 0.10
_BATCH = 4096  # output lines parsed (untimed) per batch of the floor


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
    """Parse every input line; serialize, write and fsync every output object. Timed, no logic."""
    loads, dumps = orjson.loads, orjson.dumps
    t0 = time.perf_counter()
    for f in inputs:
        with open(f, "rb", buffering=1 << 20) as fh:
            for line in fh:
                loads(line)
    seconds = time.perf_counter() - t0
    opt = orjson.OPT_APPEND_NEWLINE
    scratch.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(outputs):
        target = scratch / f"{k}.jsonl"
        with open(f, "rb", buffering=1 << 20) as src, open(target, "wb", buffering=1 << 20) as out:
            while True:
                # having the objects is not the floor's work: they are parsed outside the clock
                lines = [line for _, line in zip(range(_BATCH), src, strict=False)]
                if not lines:
                    break
                objs = [loads(line) for line in lines]
                t0 = time.perf_counter()
                for obj in objs:
                    out.write(dumps(obj, option=opt))
                seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            out.flush()
            os.fsync(out.fileno())
            seconds += time.perf_counter() - t0
        target.unlink()
    return {"seconds": seconds}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run a job in a fresh interpreter; add its peak RSS (MB) from wait4 and the load when it started."""
    load = os.getloadavg()[0]
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
    result["cpu"] = usage.ru_utime + usage.ru_stime  # the whole child: start-up and imports too
    result["load"] = load
    return result


# ---------------------------------------------------------------- driver

_BUILT = ".bench-steps.json"  # in a kept dataset: the steps that have run on it


def prepare_dataset(ws: Path, shape: str, rows: int, words: int, only: set[str] | None) -> set[str]:
    """Write the raw examples (unless a kept dataset has them); run, untimed, the steps the timed ones need.

    Returns the names of the steps whose outputs the dataset holds.
    """
    per_agent, steps = plan(shape, rows)
    marker = ws / _BUILT
    if marker.is_file():
        done = set(orjson.loads(marker.read_bytes()))
        print(f"[{shape} {rows}] reusing {ws} (steps run: {', '.join(sorted(done)) or 'none'})", flush=True)
    else:
        t0 = time.perf_counter()
        raw = write_raw_examples(ws / "data/generated_examples", per_agent, words=words)
        (ws / "identity.yaml").write_text(IDENTITY_MATRIX)
        done = set()
        marker.write_bytes(orjson.dumps([]))
        print(f"[{shape} {rows}] raw examples: {per_agent * len(AGENTS)} ({raw / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
    if only is not None:
        last = max((i for i, s in enumerate(steps) if s[0] in only), default=-1)
        for name, params, _, _ in steps[:last + 1]:
            if name not in only and name not in done:
                t0 = time.perf_counter()
                run_child({"kind": "step", "ws": str(ws), "step": name, "params": params})
                done.add(name)
                marker.write_bytes(orjson.dumps(sorted(done)))
                print(f"[{shape} {rows}] {name} (untimed, to build the data): "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
    return done


def bench_dataset(shape: str, rows: int, tmp: Path, words: int, repeat: int,
                  only: set[str] | None = None, keep: bool = False) -> list[dict[str, Any]]:
    """Build one dataset, then time every step (or those in ``only``) and its floor, alternating.

    Returns rows of the result table. The dataset lives in ``tmp/<shape>-<rows>``; it is
    removed afterwards unless ``keep``.
    """
    ws = tmp / f"{shape}-{rows}"
    _, steps = plan(shape, rows)
    done = prepare_dataset(ws, shape, rows, words, only)
    table = []
    for r in range(repeat):
        for name, params, ins, outs in steps:
            if only is not None and name not in only:
                continue
            res = run_child({"kind": "step", "ws": str(ws), "step": name, "params": params})
            if keep and name not in done:
                done.add(name)
                (ws / _BUILT).write_bytes(orjson.dumps(sorted(done)))
            floor = run_child({"kind": "floor", "inputs": _files(ws, *ins),
                               "outputs": _files(ws, *outs), "scratch": str(tmp / "floor")})
            m = res["metrics"]
            n = next((m[k] for k in ("rows", "rows_after", "examples", "trajectories") if k in m), "")
            table.append({"dataset": shape, "scale": rows, "repeat": r, "step": name, "rows": n,
                          "seconds": res["seconds"], "floor": floor["seconds"], "rss_mb": res["rss_mb"],
                          "cpu": res["cpu"],
                          "load": res["load"], "floor_load": floor["load"], "metrics": m})
            print(f"[{shape} {rows} #{r + 1}] {name}: {res['seconds']:.2f} s (load {res['load']:.1f}) · "
                  f"floor {floor['seconds']:.2f} s (load {floor['load']:.1f}) · peak RSS "
                  f"{res['rss_mb']:.0f} MB", flush=True)
    if not keep:
        shutil.rmtree(ws)
    return table


def _span(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def print_table(table: list[dict[str, Any]]) -> None:
    """Markdown table (medians over repeats, ranges in brackets), the chain per dataset, the checks."""
    print("\n| dataset | scale | step | rows | seconds | floor s | × floor | load | child CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in table:
        groups.setdefault((r["dataset"], r["scale"], r["step"]), []).append(r)
    for (shape, scale, step), rs in groups.items():
        ratios = [r["seconds"] / r["floor"] for r in rs if r["floor"] > 0.02]
        loads = [x for r in rs for x in (r["load"], r["floor_load"])]
        print(f"| {shape} | {scale:,} | {step} | {rs[0]['rows']} | {_span([r['seconds'] for r in rs], '.2f')} | "
              f"{_span([r['floor'] for r in rs], '.2f')} | {_span(ratios, '.1f') if ratios else '–'} | "
              f"{min(loads):.1f}–{max(loads):.1f} | {statistics.median(r['cpu'] for r in rs):.2f} | "
              f"{max(r['rss_mb'] for r in rs):.0f} |")
    checks = []
    for shape, scale in dict.fromkeys((r["dataset"], r["scale"]) for r in table):
        rows = [r for r in table if (r["dataset"], r["scale"]) == (shape, scale) and r["step"] in CHAIN]
        whole = {r["step"] for r in rows} == set(CHAIN)  # not when --steps left some out
        if whole:
            repeats = sorted({r["repeat"] for r in rows})
            secs = [sum(r["seconds"] for r in rows if r["repeat"] == k) for k in repeats]
            floors = [sum(r["floor"] for r in rows if r["repeat"] == k) for k in repeats]
            ratios = [s / f for s, f in zip(secs, floors, strict=True)]
            loads = [x for r in rows for x in (r["load"], r["floor_load"])]
            rss = max(r["rss_mb"] for r in rows)
            print(f"| {shape} | {scale:,} | **chain** | | {_span(secs, '.2f')} | {_span(floors, '.2f')} | "
                  f"**{_span(ratios, '.2f')}** | {min(loads):.1f}–{max(loads):.1f} | | {rss:.0f} |")
        if shape == "cross" and whole:
            checks.append((f"chain ≤ {CHAIN_TARGET:g}× floor ({shape} {scale:,})",
                           statistics.median(ratios) <= CHAIN_TARGET, f"median {_span(ratios, '.2f')}×"))
        if shape == "unique" and scale <= 100_000 and (audit := [r for r in rows if r["step"] == "audit"]):
            secs_a = [r["seconds"] for r in audit]
            checks.append((f"audit ≤ {AUDIT_UNIQUE_TARGET_S:g} s ({shape} {scale:,})",
                           statistics.median(secs_a) <= AUDIT_UNIQUE_TARGET_S,
                           f"{_span(secs_a, '.1f')} s, {audit[0]['metrics'].get('near_dup_pairs')} "
                           f"near-dup pairs"))
    for scale in dict.fromkeys(r["scale"] for r in table):
        if scale > 100_000:
            continue
        peak = max(r["rss_mb"] for r in table if r["scale"] == scale)
        checks.append((f"peak RSS ≤ {RSS_LIMIT_MB} MB ({scale:,} rows)", peak <= RSS_LIMIT_MB,
                       f"{peak:.0f} MB"))
    scales = sorted(dict.fromkeys(r["scale"] for r in table))
    if len(scales) > 1:
        lo, hi = scales[0], scales[-1]
        for (shape, scale, step), rs in groups.items():
            if scale != hi or (base := groups.get((shape, lo, step))) is None:
                continue
            small, big = max(r["rss_mb"] for r in base), max(r["rss_mb"] for r in rs)
            checks.append((f"RSS within +{RSS_GROWTH:.0%} {lo:,}→{hi:,}: {shape} {step}",
                           big <= small * (1 + RSS_GROWTH), f"{small:.0f} → {big:.0f} MB"))
    print()
    for name, ok, value in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value}")


def main() -> None:
    """Parse arguments; as a child run one job, else the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="also measure 1,000,000 rows")
    parser.add_argument("--words", type=int, default=350)
    parser.add_argument("--datasets", default="cross,unique")
    parser.add_argument("--repeat", type=int, default=3, help="step/floor pairs per step (alternating)")
    parser.add_argument("--workdir", type=Path,
                        help="keep the datasets in this directory and reuse them (default: a temporary one)")
    parser.add_argument("--steps", help="time only these steps (comma-separated)")
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
          f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}", flush=True)
    scales = [args.rows] + ([1_000_000] if args.million else [])
    only = set(args.steps.split(",")) if args.steps else None
    table: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        where = args.workdir.resolve() if args.workdir else Path(tmp)
        for scale in scales:
            for shape in args.datasets.split(","):
                # one repeat at 1M: an hour per pass is enough
                table += bench_dataset(shape, scale, where, args.words,
                                       args.repeat if scale <= 100_000 else 1,
                                       only=only, keep=args.workdir is not None)
    print_table(table)


if __name__ == "__main__":
    main()
