"""QC of generated samples: the runaway rate and the token-limit rate, written to $COORD_METRICS.

    python tools/qc.py data/stage1/pilot.jsonl

The QC gate compares them with its limits (runaway < 5 %, token limit < 10 %).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(path: str) -> int:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                print(f"{path}:{n}: not valid JSON ({e})", file=sys.stderr)
                return 2
    if not rows:
        print(f"{path}: no samples", file=sys.stderr)
        return 2
    rates = {"samples": len(rows), "runaway_rate": sum(bool(r.get("runaway")) for r in rows) / len(rows),
             "token_limit_rate": sum(bool(r.get("hit_limit")) for r in rows) / len(rows)}
    Path(os.environ["COORD_METRICS"]).write_text(json.dumps(rates), encoding="utf-8")
    print(f"{len(rows)} samples: runaway {rates['runaway_rate']:.1%}, token limit {rates['token_limit_rate']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
