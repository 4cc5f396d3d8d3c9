"""Bounded statistics and the markdown report of the audit step.

Everything here is small whatever the data size: counters, at most
``sample_size`` (≤ :data:`MAX_SAMPLES`) truncated samples per finding, at most
:data:`MAX_AGENT_ROWS` agents in the report table, and a hard cap of
:data:`MAX_REPORT_BYTES` on the rendered markdown.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_SAMPLES = 100
MAX_AGENT_ROWS = 50
MAX_REPORT_BYTES = 1_000_000
SAMPLE_CHARS = 300
OTHER = "other"

FINDING_TITLES: dict[str, str] = {
    "exact_dups": "Exact duplicates across base examples",
    "near_dups": "Near duplicates across base examples",
    "weight_out_of_range": "Weights out of range",
    "weight_missing": "Missing or non-numeric weights",
    "too_short": "Answers that are too short",
    "no_end_punct": "Answers without end punctuation",
    "pii_email": "Email addresses (masked)",
    "pii_phone": "Phone numbers (masked)",
    "schema_errors": "Rows with schema errors",
}


def snippet(text: str, limit: int = SAMPLE_CHARS) -> str:
    """One line of at most ``limit`` characters (whitespace collapsed, backticks neutralized)."""
    flat = " ".join(str(text).split()).replace("`", "'")
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"


def mask_pii(value: str) -> str:
    """A recognizable but non-identifying form of an email or phone number."""
    if "@" in value:
        local, _, domain = value.partition("@")
        tld = domain.rsplit(".", 1)[-1]
        return f"{local[:1]}***@{domain[:1]}***.{tld}"
    digits = sum(ch.isdigit() for ch in value)
    seen = 0
    out = []
    for ch in value:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - 2 else "•")
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class WeightStats:
    """Running min/max/mean of weights plus problem counts."""

    n: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None
    missing: int = 0
    out_of_range: int = 0

    def add(self, w: float) -> None:
        """Account for one weight."""
        self.n += 1
        self.total += w
        self.low = w if self.low is None or w < self.low else self.low
        self.high = w if self.high is None or w > self.high else self.high

    def metrics(self, prefix: str) -> dict[str, float | int | None]:
        """``<prefix>min/max/mean/out_of_range/missing``."""
        return {f"{prefix}min": self.low, f"{prefix}max": self.high,
                f"{prefix}mean": self.total / self.n if self.n else None,
                f"{prefix}out_of_range": self.out_of_range, f"{prefix}missing": self.missing}


class LengthHistogram:
    """Exact counts of word lengths 0..bins-2 plus one overflow bin: O(bins) memory.

    Percentiles are nearest-rank and exact for lengths below the overflow bin.
    """

    def __init__(self, bins: int = 4096) -> None:
        self.counts = array("q", bytes(8 * bins))
        self.n = 0
        self.total = 0

    def add(self, words: int) -> None:
        """Count one length."""
        self.counts[min(words, len(self.counts) - 1)] += 1
        self.n += 1
        self.total += words

    @property
    def mean(self) -> float | None:
        """Exact mean (None when empty)."""
        return self.total / self.n if self.n else None

    def percentile(self, q: float) -> int | None:
        """Nearest-rank ``q`` quantile (None when empty)."""
        if self.n == 0:
            return None
        need, seen = max(1, math.ceil(q * self.n)), 0
        for words, count in enumerate(self.counts):
            seen += count
            if seen >= need:
                return words
        return len(self.counts) - 1


class BitSet:
    """A set of base-example indexes as a bitmap: 1 bit per base, not ~50 bytes per member."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self._len = 0

    def add(self, i: int) -> bool:
        """Add index ``i`` (>= 0); True when it was not in the set."""
        byte, bit = i >> 3, 1 << (i & 7)
        if byte >= len(self._bits):  # grow by an eighth, so appends stay amortized O(1)
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits) >> 3, 64)))
        if self._bits[byte] & bit:
            return False
        self._bits[byte] |= bit
        self._len += 1
        return True

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        bits = np.unpackbits(np.frombuffer(bytes(self._bits), dtype=np.uint8), bitorder="little")
        return iter(np.flatnonzero(bits).tolist())


@dataclass
class AgentStats:
    """Per target agent counters."""

    rows: int = 0
    reuse_rows: int = 0
    dup_rows: int = 0
    too_short_rows: int = 0
    no_end_punct_rows: int = 0
    pii_email_rows: int = 0
    pii_phone_rows: int = 0
    pii_rows: int = 0
    words_sum: int = 0
    weights: WeightStats = field(default_factory=WeightStats)
    bases: BitSet = field(default_factory=lambda: BitSet())
    """Indexes of the base examples this agent trains on."""
    difficulty_counts: list[int] = field(default_factory=list)
    """Of those base examples, how many have each difficulty (by code)."""
    last_base: int = -1
    """The base example of the agent's latest row (its next rows are often of the same one)."""

    def add_base(self, index: int, code: int) -> None:
        """Count base example ``index``, of difficulty ``code``, unless already counted."""
        if self.bases.add(index):
            counts = self.difficulty_counts
            if code >= len(counts):
                counts.extend([0] * (code + 1 - len(counts)))
            counts[code] += 1

    def summary(self, names: Sequence[str], target: Mapping[str, float]) -> dict[str, Any]:
        """Plain-dict breakdown for the metrics file and the report."""
        mix, deviation = difficulty_mix(self.difficulty_counts, names, target)
        return {"rows": self.rows, "unique_bases": len(self.bases),
                "cross_agent_reuse_rows": self.reuse_rows, "exact_dup_rows": self.dup_rows,
                **self.weights.metrics("weight_"),
                "answer_words_mean": self.words_sum / self.rows if self.rows else None,
                "too_short_rows": self.too_short_rows, "no_end_punct_rows": self.no_end_punct_rows,
                "pii_email_rows": self.pii_email_rows, "pii_phone_rows": self.pii_phone_rows,
                "pii_rows": self.pii_rows, "difficulty": mix,
                "difficulty_max_deviation": deviation}


class Findings:
    """The first ``sample_size`` samples of each kind of finding, in input order."""

    def __init__(self, sample_size: int) -> None:
        self.sample_size = min(sample_size, MAX_SAMPLES)
        self.samples: dict[str, list[str]] = {}

    def wants(self, kind: str) -> bool:
        """Whether another sample of ``kind`` would be kept (check before formatting one)."""
        return len(self.samples.get(kind, ())) < self.sample_size

    def add(self, kind: str, text: str) -> None:
        """Keep a sample when there is room."""
        bucket = self.samples.setdefault(kind, [])
        if len(bucket) < self.sample_size:
            bucket.append(snippet(text))

    def as_dict(self) -> dict[str, list[str]]:
        """Samples by kind, kinds sorted."""
        return {k: list(v) for k, v in sorted(self.samples.items())}


def difficulty_mix(counts: Sequence[int], names: Sequence[str],
                   target: Mapping[str, float]) -> tuple[dict[str, float], float | None]:
    """Observed share of each difficulty and the largest gap to ``target``.

    ``counts[c]`` is how many base examples have difficulty ``names[c]`` (missing trailing
    counts are 0). Every target name is reported (0 when absent); names outside the target
    are reported too, and their whole share counts as deviation.
    """
    counts = [*counts, *[0] * (len(names) - len(counts))]
    total = sum(counts)
    if total == 0:
        return dict.fromkeys(target, 0.0), None
    mix = dict.fromkeys(target, 0.0)
    for name, n in zip(names, counts, strict=True):
        if n:
            mix[name] = mix.get(name, 0.0) + n / total
    deviation = max(abs(share - target.get(name, 0.0)) for name, share in mix.items())
    return mix, deviation


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else "nan"
    return "–" if value is None else str(value)


_METRIC_SECTIONS: list[tuple[str, list[str]]] = [
    ("Volume", ["rows", "files", "agents", "unique_texts", "unique_bases", "rejects",
                "schema_errors"]),
    ("Duplicates", ["exact_dup_groups", "exact_dup_rows", "exact_dup_rate",
                    "cross_agent_reuse_rows", "near_dup_pairs", "near_dup_texts",
                    "near_dup_rate"]),
    ("Weights", ["weight_min", "weight_max", "weight_mean", "weight_out_of_range",
                 "weight_missing"]),
    ("Answer length (words of the last assistant message)",
     ["answer_words_mean", "answer_words_p50", "answer_words_p95", "too_short_rows",
      "too_short_rate", "no_end_punct_rows", "no_end_punct_rate"]),
    ("PII", ["pii_email_rows", "pii_phone_rows", "pii_rows", "pii_rate", "pii_texts"]),
]

_SAMPLE_KINDS: dict[str, list[str]] = {
    "Duplicates": ["exact_dups", "near_dups"],
    "Weights": ["weight_out_of_range", "weight_missing"],
    "Answer length (words of the last assistant message)": ["too_short", "no_end_punct"],
    "PII": ["pii_email", "pii_phone"],
    "Volume": ["schema_errors"],
}


def render_report(metrics: Mapping[str, Any], agents: Mapping[str, Mapping[str, Any]],
                  findings: Findings, target: Mapping[str, float],
                  params: Mapping[str, Any]) -> str:
    """The markdown audit report: counts, the difficulty table, samples, per-agent table."""
    out = ["# Training data audit", "",
           f"Input `{params['sft_dir']}`; near-duplicate threshold "
           f"{params['near_dup_threshold']}, minimum answer {params['min_words']} words, "
           f"weight range {params['weight_range']}.", ""]
    for title, keys in _METRIC_SECTIONS:
        out += [f"## {title}", "", "| metric | value |", "|---|---|"]
        out += [f"| {k} | {_fmt(metrics.get(k))} |" for k in keys]
        out.append("")
        for kind in _SAMPLE_KINDS.get(title, []):
            samples = findings.samples.get(kind)
            if samples:
                out += [f"{FINDING_TITLES[kind]} (first {len(samples)}):", ""]
                out += [f"- {s}" for s in samples]
                out.append("")
    out += ["## Difficulty mix (per unique base example)", "", "| difficulty | observed | target |",
            "|---|---|---|"]
    names = list(target) + ([OTHER] if OTHER not in target else [])
    for name in names:
        out.append(f"| {name} | {_fmt(metrics.get(f'difficulty_{name}'))} | "
                   f"{_fmt(target.get(name, 0.0))} |")
    out += ["", f"Largest deviation: {_fmt(metrics.get('difficulty_max_deviation'))}", ""]
    out += ["## Per target agent", "",
            "| agent | rows | bases | reuse rows | dup rows | weight min–max | too short | "
            "no end punct | PII rows | difficulty deviation |", "|---|---|---|---|---|---|---|---|---|---|"]
    for i, (name, a) in enumerate(agents.items()):
        if i == MAX_AGENT_ROWS:
            out.append(f"| … {len(agents) - MAX_AGENT_ROWS} more agents in audit_metrics.json | "
                       "| | | | | | | | |")
            break
        out.append(f"| {snippet(name, 40)} | {a['rows']} | {a['unique_bases']} | "
                   f"{a['cross_agent_reuse_rows']} | {a['exact_dup_rows']} | "
                   f"{_fmt(a['weight_min'])}–{_fmt(a['weight_max'])} | {a['too_short_rows']} | "
                   f"{a['no_end_punct_rows']} | {a['pii_rows']} | "
                   f"{_fmt(a['difficulty_max_deviation'])} |")
    text = "\n".join(out) + "\n"
    return _cap(text)


def _cap(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_REPORT_BYTES:
        return text
    cut = data[: MAX_REPORT_BYTES - 200].decode("utf-8", errors="ignore")
    return cut + "\n\n…report truncated at 1 MB; see audit_metrics.json.\n"


def metric_key(name: str) -> str:
    """A metric-safe form of a data value (letters, digits, underscores)."""
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "unknown"
