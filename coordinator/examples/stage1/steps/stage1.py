"""Stage-1 steps with a seeded, offline stand-in generator (no model is called).

The stand-in behaves like a sampling model in the two ways stage 1 checks:

- a *runaway* (a generation that never stops on topic) happens with probability
  ``0.525 × (temperature − 0.6)``: about 21 % at temperature 1.0, 5 % at 0.7, none below 0.6;
- an answer's length is ``262 × e^(0.45 z)`` tokens (z standard normal), so it *hits the token
  limit* about 52 % of the time at ``max_tokens`` 256, 7 % at 512 and almost never at 1,024.

Every number these steps report is computed from the rows they wrote. Costs are estimates: the
tokens the stand-in produced priced as a hosted model would charge (``PRICE_PER_M``); the
stand-in itself costs nothing, and the ledger records say so.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from coordinator import StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError

TYPES = ("qa", "summarize", "extract", "classify", "rewrite")
TOPICS = ("a refund request", "a quarterly sales table", "a privacy policy", "a bug report", "a product launch",
          "an onboarding guide", "a support ticket", "a contract clause", "a release note", "a survey result")
PRICE_PER_M = {"input": 3.0, "output": 15.0}
"""USD per million tokens used to estimate what the stand-in's tokens would cost on a hosted model."""
STAND_IN = "stage1-stand-in"
SHARDS_DIR = WsPath("data/stage1/shards")
HELDOUT = WsPath("data/stage1/heldout.jsonl")
TRAIN = WsPath("data/stage1/sft/train.jsonl")


def sample(rng: random.Random, kind: str, temperature: float, max_tokens: int) -> dict[str, Any]:
    """One stand-in generation: its instruction, length, and whether it ran away or hit the limit."""
    topic = rng.choice(TOPICS)
    instruction = f"{kind}: {topic} (variant {rng.randrange(10**6):06d})"
    runaway = rng.random() < max(0.0, 0.525 * (temperature - 0.6))
    length = int(262 * math.exp(0.45 * rng.gauss(0.0, 1.0)))
    hit_limit = length > max_tokens
    tokens = min(length, max_tokens)
    response = f"[{kind} answer about {topic}, {tokens} tokens]" + (" and then it kept going…" if runaway else "")
    return {"type": kind, "instruction": instruction, "response": response, "tokens": tokens,
            "prompt_tokens": 60, "runaway": runaway, "hit_limit": hit_limit}


def estimate_usd(rows: list[dict[str, Any]]) -> float:
    """What the rows' tokens would cost at ``PRICE_PER_M``."""
    tokens_in = sum(r["prompt_tokens"] for r in rows)
    tokens_out = sum(r["tokens"] for r in rows)
    return round((tokens_in * PRICE_PER_M["input"] + tokens_out * PRICE_PER_M["output"]) / 1e6, 6)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """JSONL, written to a temporary file and renamed (a kill never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """JSONL rows; a line that does not parse is an input error naming the file and line."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as e:
                raise InputError(f"not valid JSON ({e})", path=path, line=n) from None
            if not isinstance(row, dict):
                raise InputError("expected a JSON object", path=path, line=n)
            rows.append(row)
    return rows


def _samples_provenance(tids: list[str], params: Any, records: Any) -> str:
    return (f"Samples ({len(tids)} shards, and the pilot): written by a seeded **stand-in** generator (not model "
            "output); their costs are estimates of what the tokens would cost on a hosted model.")


@step(limits={"n": (1, 100_000), "temperature": {"gt": 0, "le": 2}, "max_tokens": (16, 32_768)},
      provenance=_samples_provenance,
      board_note=lambda params: "samples come from a seeded stand-in generator (not model output)")
def generate_shard(ctx: StepContext, *, shard: str, n: int = 100, temperature: float = 1.0,
                   max_tokens: int = 256, seed: int = 7, out_dir: WsPath = SHARDS_DIR) -> StepResult:
    """One shard of the scaled-out generation, with the parameters the pilot ended with."""
    out = ctx.path(out_dir) / f"{shard}.jsonl"
    params = {"shard": shard, "n": n, "temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    run = StepRun(ctx, "generate_shard", params, inputs=[], outputs=[out], seed=seed, provider=STAND_IN)
    if (cached := run.cached()) is not None:
        return cached
    rng = random.Random(f"{seed}:{shard}")
    rows = [{"id": f"{shard}-{i:04d}", **sample(rng, TYPES[i % len(TYPES)], temperature, max_tokens)}
            for i in range(n)]
    write_rows(out, rows)
    run.record(out, rows=len(rows))
    usd = estimate_usd(rows)
    ctx.record_cost(usd, model=f"{STAND_IN} (priced as a hosted model)", provider="offline",
                    tokens_in=sum(r["prompt_tokens"] for r in rows), tokens_out=sum(r["tokens"] for r in rows),
                    ref=f"generate_shard:{run.key}")
    return run.finish({"rows": len(rows), "runaway_rate": sum(r["runaway"] for r in rows) / len(rows),
                       "token_limit_rate": sum(r["hit_limit"] for r in rows) / len(rows), "est_usd": usd})


@step(limits={"per_type": (1, 10_000)})
def build_heldout(ctx: StepContext, *, per_type: int = 40, seed: int = 7, shards_dir: WsPath = SHARDS_DIR,
                  out: WsPath = HELDOUT) -> StepResult:
    """A held-out test set: ``per_type`` instructions of each of the 5 types, none seen in training."""
    shard_files = sorted(ctx.path(shards_dir).glob("*.jsonl"))
    path = ctx.path(out)
    run = StepRun(ctx, "build_heldout", {"per_type": per_type, "seed": seed}, inputs=shard_files, outputs=[path],
                  seed=seed)
    if (cached := run.cached()) is not None:
        return cached
    seen = {r["instruction"] for f in shard_files for r in read_rows(f)}
    rng = random.Random(f"{seed}:heldout")
    rows: list[dict[str, Any]] = []
    redrawn = 0
    for kind in TYPES:
        kept = 0
        while kept < per_type:
            row = sample(rng, kind, temperature=0.5, max_tokens=4096)
            if row["instruction"] in seen:
                redrawn += 1
                continue
            seen.add(row["instruction"])
            rows.append({"id": f"heldout-{kind}-{kept:03d}", "type": kind, "instruction": row["instruction"]})
            kept += 1
    write_rows(path, rows)
    run.record(path, rows=len(rows))
    per = {k: sum(r["type"] == k for r in rows) for k in TYPES}
    return run.finish({"rows": len(rows), "types": len(per), "per_type_min": min(per.values()),
                       "overlap_with_train": 0, "redrawn": redrawn})


@step()
def sft_dry_run(ctx: StepContext, *, shards_dir: WsPath = SHARDS_DIR, heldout: WsPath = HELDOUT,
                out: WsPath = TRAIN) -> StepResult:
    """Build the SFT training file and validate it; refuse to start on an invalid dataset. Nothing is trained."""
    shard_files = sorted(ctx.path(shards_dir).glob("*.jsonl"))
    if not shard_files:
        raise InputError("no shard files: the scale-out wrote nothing to train on", path=ctx.path(shards_dir))
    held = ctx.path(heldout)
    path = ctx.path(out)
    run = StepRun(ctx, "sft_dry_run", {}, inputs=[*shard_files, held], outputs=[path])
    if (cached := run.cached()) is not None:
        return cached
    test_instructions = {r["instruction"] for r in read_rows(held)}
    train: list[dict[str, Any]] = []
    runaway = limited = 0
    for f in shard_files:
        for n, row in enumerate(read_rows(f), 1):
            missing = [k for k in ("instruction", "response", "runaway", "hit_limit") if k not in row]
            if missing:
                raise InputError(f"dataset refused: missing {', '.join(missing)}", path=f, line=n, field=missing[0])
            if row["instruction"] in test_instructions:
                raise InputError("dataset refused: this instruction is in the held-out test set", path=f, line=n,
                                 field="instruction")
            if row["runaway"]:
                runaway += 1
            elif row["hit_limit"]:
                limited += 1
            else:
                train.append({"messages": [{"role": "user", "content": row["instruction"]},
                                           {"role": "assistant", "content": row["response"]}]})
    if not train:
        raise InputError("dataset refused: no usable example (every row ran away or hit the token limit)",
                         path=ctx.path(shards_dir))
    write_rows(path, train)
    run.record(path, rows=len(train))
    tokens = sum(len(m["content"].split()) for r in train for m in r["messages"])
    return run.finish({"examples": len(train), "excluded_runaway": runaway, "excluded_token_limit": limited,
                       "approx_tokens": tokens, "dry_run": True, "trained": False},
                      notes=["dry run: the training file was built and validated; nothing was trained"])


def _provenance(tids: list[str], params: Any, records: Any) -> str:
    return (f"Evaluation ({', '.join(tids)}): both models are a seeded **stand-in** (no model was trained or "
            "called): the accuracies exercise the statistics, they are not model results.")


@step(provenance=_provenance, board_note=lambda params: "the paired evaluation compares two seeded stand-ins")
def paired_eval(ctx: StepContext, *, heldout: WsPath = HELDOUT, train: WsPath = TRAIN, seed: int = 7,
                out: WsPath = WsPath("reports/stage1/evaluation.json")) -> StepResult:
    """Base vs. tuned on the held-out set, item by item; McNemar's exact test on the discordant pairs."""
    items = read_rows(ctx.path(heldout))
    examples = sum(1 for _ in ctx.path(train).open(encoding="utf-8"))
    rng = random.Random(f"{seed}:eval")
    # the stand-in's tuned model gains with the training set's size, up to 25 points
    gain = 0.25 * min(1.0, examples / 800)
    b = c = base_right = tuned_right = 0
    for _ in items:
        u, flip = rng.random(), rng.random() < 0.04
        base = u < 0.55
        tuned = (u < 0.55 + gain) != flip
        base_right += base
        tuned_right += tuned
        b += base and not tuned
        c += tuned and not base
    p = binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
    n = len(items)
    result = {"n": n, "base_accuracy": base_right / n, "tuned_accuracy": tuned_right / n,
              "improvement_pp": round(100 * (tuned_right - base_right) / n, 2), "b": b, "c": c,
              "mcnemar_p": p, "stand_in": True}
    path = ctx.path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return StepResult(metrics=result)
