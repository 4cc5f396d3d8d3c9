"""Precision and recall of the PII detectors per class on the labelled set.

Reads ``bench/data/pii_labelled.jsonl`` (see :mod:`pipeline.pii.evaluate` for the format)
and prints, per class, what each detector found:

- the scrubbing detector (``find_pii``) with the default classes — IP addresses are off,
  so the labelled IPs must stay unflagged (a finding on one counts against its class);
- the same detector with every class on, IP included;
- the second detector (``find_pii_second``, used by ``scrub_pii`` to re-check its output)
  with the default classes;

then every false positive and false negative, and the time per text. Targets (issue 14):
recall ≥ 0.95 and precision ≥ 0.98 for emails and phones; ``tests/pipeline/test_pii_benchmark.py``
asserts them on the same file.

    python bench/bench_pii.py                  # tables and errors
    python bench/bench_pii.py --errors 0       # tables only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.pii import ALL_CLASSES, DEFAULT_CLASSES, find_pii, find_pii_second
from pipeline.pii.evaluate import Evaluation, evaluate, load_labelled

DATA = ROOT / "bench" / "data" / "pii_labelled.jsonl"
TARGETS = {"email": (0.98, 0.95), "phone": (0.98, 0.95)}  # class: (precision, recall)


def table(title: str, result: Evaluation) -> None:
    """Print one detector's scores per class."""
    print(f"\n{title}\n")
    print("| class | labelled | found | true pos | false pos | missed | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, s in result.scores.items():
        print(f"| {kind} | {s.tp + s.fn} | {s.tp + s.fp} | {s.tp} | {s.fp} | {s.fn} | "
              f"{s.precision:.3f} | {s.recall:.3f} |")


def main() -> None:
    """Score both detectors and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--errors", type=int, default=50, help="errors listed per detector")
    args = parser.parse_args()
    records = load_labelled(args.data)
    negatives = sum(1 for r in records if not r.spans)
    print(f"{len(records)} texts ({negatives} hard negatives, "
          f"{sum(len(r.spans) for r in records)} labelled spans) from {args.data.relative_to(ROOT)}")

    runs = (("Scrubbing detector (find_pii), default classes (IP off)", find_pii, DEFAULT_CLASSES),
            ("Scrubbing detector (find_pii), every class (IP on)", find_pii, ALL_CLASSES),
            ("Second detector (find_pii_second), default classes", find_pii_second, DEFAULT_CLASSES))
    for title, detect, classes in runs:
        start = time.perf_counter()
        result = evaluate(records, detect, classes)
        micros = (time.perf_counter() - start) / len(records) * 1e6
        table(f"{title} — {micros:.0f} µs per text", result)
        if args.errors and result.errors:
            print()
            for e in result.errors[:args.errors]:
                label = "false positive" if e.found else "missed"
                print(f"- {e.id}: {label} {e.kind}: {e.value!r}")
        if detect is find_pii and classes == DEFAULT_CLASSES:
            met = all(result.scores[k].precision >= p and result.scores[k].recall >= r
                      for k, (p, r) in TARGETS.items())
            print(f"\ntargets (email, phone: precision ≥ 0.98, recall ≥ 0.95): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
