"""Pilot generation (a command task): sample with the given parameters, report what was used.

On a retry it reads the QC gate's feedback from $COORD_FEEDBACK and fixes what failed:
a runaway rate over the limit lowers the temperature by 30 %, a token-limit rate over the
limit doubles max_tokens. Writes data/stage1/pilot.jsonl, the metrics to $COORD_METRICS and
the estimated cost of its tokens to $COORD_COSTS.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, os.environ.get("COORD_WORKSPACE", str(Path(__file__).resolve().parents[1])))

from steps.stage1 import STAND_IN, TYPES, estimate_usd, sample, write_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--shards", type=int, default=10)
    args = parser.parse_args()
    temperature, max_tokens, changes = args.temperature, args.max_tokens, []
    feedback_file = os.environ.get("COORD_FEEDBACK")
    if feedback_file:
        feedback = json.loads(Path(feedback_file).read_text(encoding="utf-8"))
        for attempt in feedback["attempts"]:  # apply every earlier verdict in order
            failed = {c["id"] for c in attempt["criteria"] if not c["passed"]}
            if "runaway_rate" in failed:
                temperature = round(temperature * 0.7, 3)
                changes.append(f"attempt {attempt['attempt']}: runaway rate too high → temperature {temperature}")
            if "token_limit_rate" in failed:
                max_tokens *= 2
                changes.append(f"attempt {attempt['attempt']}: token-limit rate too high → max_tokens {max_tokens}")
    rng = random.Random(f"{args.seed}:pilot:{temperature}:{max_tokens}")
    rows = [{"id": f"pilot-{i:04d}", **sample(rng, TYPES[i % len(TYPES)], temperature, max_tokens)}
            for i in range(args.n)]
    write_rows(Path("data/stage1/pilot.jsonl"), rows)
    metrics = {"rows": len(rows), "temperature": temperature, "max_tokens": max_tokens,
               "shards": [f"shard-{k:02d}" for k in range(args.shards)]}
    Path(os.environ["COORD_METRICS"]).write_text(json.dumps(metrics), encoding="utf-8")
    with open(os.environ["COORD_COSTS"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"usd": estimate_usd(rows), "tokens_in": sum(r["prompt_tokens"] for r in rows),
                             "tokens_out": sum(r["tokens"] for r in rows), "model": STAND_IN,
                             "provider": "offline", "note": "estimate: the stand-in's tokens priced as a hosted "
                                                           "model would charge"}) + "\n")
    for line in changes:
        print(line)
    print(f"pilot: {len(rows)} samples at temperature {temperature}, max_tokens {max_tokens}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
