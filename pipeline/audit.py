"""audit: one streaming pass over the Unsloth training files, measuring data quality.

Every row's conversation *without its system prompt* is joined (``from: value`` per
message), lowercased and whitespace-collapsed; its 16-byte xxh3-128 digest identifies
the row's content (two different texts share one with probability ~n²/2¹²⁹, about 10⁻²⁷
among a million; the digest is not cryptographic and is never shown). Rows are then
partitioned:

- the first row of each distinct content is a **unique text**;
- a later row whose content first appeared under the *same* ``base_id`` is
  intentional reuse (the same example for another target agent, or another prompt
  variant) — ``cross_agent_reuse_rows``;
- a later row whose content first appeared under a *different* ``base_id`` is a true
  duplicate — ``exact_dup_rows``; ``exact_dup_groups`` counts the contents involved.

So ``rows = unique_texts + cross_agent_reuse_rows + exact_dup_rows``. Near duplicates
are found by MinHash LSH (:mod:`pipeline.minhash`) over the unique texts only, keeping
verified pairs whose first ``base_id`` differs. Per-content facts (answer length,
punctuation, PII) are computed once per unique text and counted for every row that
carries it; PII is also looked for in system prompts (cached per distinct prompt).

Metrics (flat): ``rows``, ``files``, ``agents``, ``unique_texts``, ``unique_bases``,
``rejects`` (lines that are not JSON), ``schema_errors`` (rows missing or mistyping a
required field; both go to ``<out_dir>/<file>.rejects.jsonl``), ``exact_dup_groups``,
``exact_dup_rows``, ``exact_dup_rate`` (/ rows), ``cross_agent_reuse_rows``,
``near_dup_pairs``, ``near_dup_texts`` (unique texts in at least one pair),
``near_dup_rate`` (near_dup_texts / unique_texts), ``weight_min``, ``weight_max``,
``weight_mean``, ``weight_out_of_range``, ``weight_missing``, ``answer_words_mean``,
``answer_words_p50``, ``answer_words_p95`` (words of the last ``gpt`` message per row;
percentiles from an exact histogram of 0..4095 words with one overflow bin),
``too_short_rows``, ``too_short_rate``, ``no_end_punct_rows``, ``no_end_punct_rate``,
``pii_email_rows``, ``pii_phone_rows``, ``pii_rows``, ``pii_rate`` (/ rows),
``pii_texts`` (unique texts with PII), ``difficulty_<name>`` (share of unique base
examples) and ``difficulty_max_deviation`` (largest absolute gap to the target).

Outputs: ``<out_dir>/audit_metrics.json`` (metrics, per-agent breakdown, samples) and
``<out_dir>/audit_report.md`` (bounded, see :mod:`pipeline.audit_report`).
Memory does not grow with the data beyond the Bloom filters of the spilled lookups (12 bits
per key: ~1.7 bytes per unique text and per base example, and per raw content of the files
read through build_sft's row index) and ~2 bits per unique text and agent (which texts were
repeated; which base examples each agent trains on): the content digests and base_id
lookups spill to SQLite past a cap (the raw-content shortcut of rows parsed from a file is
a bounded cache instead, as those files are mostly distinct rows), and the facts kept per
content (its index, first base, answer words, flags) and per base example (index,
difficulty) are the values those lookups map to, so they spill with them; base names and
each text's first base (read back for the near-duplicate pairs) go to files
(:mod:`pipeline._spill`), MinHash signatures and LSH bands live in temporary files
(:mod:`pipeline.lsh`); never the texts. Difficulty shares are counted as base examples
appear. The lookups are dropped before the near duplicates are paired, which needs memory
of its own (bounded as well).
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError, ParameterError
from coordinator.core.io import (
    Rejects,
    atomic_write_json,
    atomic_write_text,
    data_files,
    iter_jsonl,
)
from pipeline._rowindex import RowIndex, content_key, content_text
from pipeline._spill import SpillArray, SpillList, SpillMap
from pipeline.audit_report import (
    MAX_SAMPLES,
    OTHER,
    AgentStats,
    BitSet,
    Findings,
    LengthHistogram,
    WeightStats,
    difficulty_mix,
    mask_pii,
    metric_key,
    render_report,
    snippet,
)
from pipeline.minhash import NearDupIndex, normalize_text
from pipeline.pii import find_pii

log = logging.getLogger(__name__)

DEFAULT_SFT_DIR, DEFAULT_OUT_DIR = WsPath("data/sft/unsloth"), WsPath("reports/audit")
# shared defaults: the step only reads them
DEFAULT_DIFFICULTY_TARGET: dict[str, float] = {"easy": 0.30, "medium": 0.45, "hard": 0.25}
DEFAULT_WEIGHT_RANGE: list[float] = [0.0, 1.0]
REQUIRED_FIELDS = ("conversations", "target_agent", "source_agent", "base_id", "category",
                   "difficulty", "variant")
_REQUIRED = frozenset(REQUIRED_FIELDS)
HIST_BINS = 4096
MAX_DIFFICULTY_NAMES = 32  # distinct difficulty values tracked; later ones count as "other"
_SYSTEM_CACHE_MAX = 4096
_RECENT_SYSTEM, _RECENT_SYSTEM_CHARS = 64, 4096  # ≤ 256k characters
_LOOKUP_ITEMS, _LOOKUP_CACHE_KIB, _LOOKUP_BLOOM_BITS = 1 << 13, 256, 12
_LIST_ITEMS = 1 << 12  # values kept in memory by the append-only lists
_END_CLOSERS = "\"')]}*_`»”’ "
# per unique text, bit flags
_SHORT, _NO_PUNCT, _EMAIL, _PHONE = 1, 2, 4, 8
_RECORD = struct.Struct("<IIQB")  # a content's record, as its lookups hold it (see _Content)
_LOW32 = (1 << 32) - 1
# row counters (same attribute name on the accumulator and on AgentStats) per flag
_ROW_COUNTERS = ((_SHORT, "too_short_rows"), (_NO_PUNCT, "no_end_punct_rows"),
                 (_EMAIL, "pii_email_rows"), (_PHONE, "pii_phone_rows"))


def _lookup() -> SpillMap[Any, Any]:
    """One of the per-row lookups: what it holds once spilled does not grow with the data.

    Its buffer (~1 MB) is as large as the lookups of 100k rows of a few thousand distinct
    texts need, so they never spill; its page cache is small (the Bloom filter keeps most
    lookups away from SQLite), and the filter has 12 bits per key (~1 % false positives,
    each costing one SELECT) instead of 20, as memory per key is what still grows.
    """
    return SpillMap(memory_items=_LOOKUP_ITEMS, cache_kib=_LOOKUP_CACHE_KIB,
                    bits_per_key=_LOOKUP_BLOOM_BITS)


def ends_with_punctuation(answer: str) -> bool:
    """True when an answer ends with ``.?!`` (closing quotes/parens/emphasis may follow) or a code fence."""
    text = answer.rstrip()
    if text.endswith("```"):
        return True
    return text.rstrip(_END_CLOSERS)[-1:] in {".", "?", "!", "…"}


class _Content(NamedTuple):
    """What the audit keeps about a distinct content (normalized text)."""

    text: int
    """Its text index (order of first appearance; the near-duplicate index's order too)."""
    first_base: int
    """Index of the base example it first appeared under."""
    words: int
    """Words of its answer (the last ``gpt`` message)."""
    flags: int
    """``_SHORT``, ``_NO_PUNCT``, ``_EMAIL``, ``_PHONE`` bits."""


class _RecentRaw:
    """The latest raw content keys and their records, at most ``cap`` (then it starts over)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._map: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        """The record of ``key`` if it is among the latest."""
        return self._map.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        """Remember ``key``."""
        if len(self._map) >= self.cap:
            self._map.clear()
        self._map[key] = value


class _Problem(NamedTuple):
    """The first schema problem of a row."""

    field: str
    reason: str


def _split_row(row: Any) -> tuple[list[str], list[str]] | _Problem:
    """``(body parts, system prompts)`` of a schema-valid row, else its first schema problem.

    A body part is ``"<from>: <value>"`` for each message that is not a system prompt, in order.
    """
    if not isinstance(row, dict):
        return _Problem("", "row is not a JSON object")
    if not row.keys() >= _REQUIRED:
        name = next(n for n in REQUIRED_FIELDS if n not in row)
        return _Problem(name, f"missing required field {name!r}")
    conv = row["conversations"]
    if not isinstance(conv, list) or not conv:
        return _Problem("conversations", "conversations must be a non-empty list")
    body: list[str] = []
    system: list[str] = []
    for i, m in enumerate(conv):
        if not isinstance(m, dict):
            return _Problem(f"conversations[{i}]", "message needs string 'from' and 'value'")
        frm, value = m.get("from"), m.get("value")
        if not isinstance(frm, str) or not isinstance(value, str):
            return _Problem(f"conversations[{i}]", "message needs string 'from' and 'value'")
        if frm == "system":
            system.append(value)
        else:
            body.append(f"{frm}: {value}")
    for name in ("target_agent", "base_id"):
        if not isinstance(row[name], str) or not row[name]:
            return _Problem(name, f"{name} must be a non-empty string")
    return body, system


def _row_id(row: dict[str, Any]) -> str:
    """How findings name a row."""
    return str(row.get("id") or f"{row['target_agent']}:{row['base_id']}")


class AuditAccumulator:
    """Running state of one audit pass: bounded counters, per-text flags, samples."""

    def __init__(self, *, near_dup_threshold: float, min_words: int,
                 weight_range: tuple[float, float], sample_size: int) -> None:
        self.min_words = min_words
        self.lo, self.hi = weight_range
        self.rows = self.rejects = self.schema_errors = 0
        self.unique = self.reuse_rows = self.dup_rows = 0
        self.weights = WeightStats()
        self.lengths = LengthHistogram(HIST_BINS)
        self.too_short_rows = self.no_end_punct_rows = 0
        self.pii_email_rows = self.pii_phone_rows = self.pii_rows = 0
        # per-row lookups spill to disk past a cap (pipeline._spill). A content's facts (its
        # text index, first base, answer words, flags) are the value its keys map to, so they
        # spill with them; a base's index and difficulty code likewise
        self.texts: SpillMap[bytes, bytes] = _lookup()
        self.raw_texts: SpillMap[bytes, bytes] = _lookup()
        # raw content key → record: only a shortcut past normalizing (the texts lookup is what
        # decides), so rows parsed from a file (mostly distinct: build_sft indexes the others)
        # use a bounded one instead of a lookup that spills and grows a Bloom filter
        self._recent_raw = _RecentRaw(_LOOKUP_ITEMS)
        self._raw: SpillMap[bytes, bytes] | _RecentRaw = self._recent_raw
        self.first_bases = SpillArray(memory_items=_LIST_ITEMS)  # by text index, for the pairs
        self.dup_texts = BitSet()  # texts repeated under another base
        self.pii_texts = 0
        self.bases: SpillMap[str, int] = _lookup()
        self._base_names = SpillList(memory_items=_LIST_ITEMS)  # only report samples read them
        self.unique_bases = 0
        self.difficulty_names: list[str] = []
        self.difficulty_counts: list[int] = []  # base examples per difficulty code
        self._difficulty_codes: dict[str, int] = {}
        self.agents: dict[str, AgentStats] = {}
        self.system_flags: dict[bytes, int] = {}
        self._recent_system: dict[str, int] = {}  # a subset of system_flags, keyed by text
        self._last_base: tuple[str | None, int, int] = (None, -1, -1)  # the row before's base_id,
        # index and difficulty code, and its raw content key and content record
        self._last_text: tuple[bytes, _Content] = (b"", _Content(-1, -1, 0, 0))
        self.findings = Findings(sample_size)
        self.index = NearDupIndex(threshold=near_dup_threshold)

    def reject(self, rejects: Rejects, path: Path, line: int, row: Any, field: str,
               reason: str) -> None:
        """Record a row that breaks the schema."""
        self.schema_errors += 1
        raw = snippet(str(row), 2000)
        rejects.add(source=path, line=line, reason=reason, field=field or None, raw=raw)
        if self.findings.wants("schema_errors"):
            self.findings.add("schema_errors", f"{path.name}:{line}: {reason}")

    def add(self, row: Any) -> _Problem | None:
        """Account for one row; a row that breaks the schema is not counted: its problem instead."""
        split = _split_row(row)
        if isinstance(split, _Problem):
            return split
        parts, system = split
        raw = "\n".join(parts)  # content_text(conversation), its parts built while checking them
        self._add(row, system, content_key(raw),
                  lambda: (raw, [m for m in row["conversations"] if m["from"] != "system"]))
        return None

    def add_indexed(self, index: RowIndex) -> None:
        """Account for the rows of a file from its row index (build_sft's rows are schema-valid)."""
        def body(key: bytes, offset: int, length: int) -> tuple[str, list[dict[str, str]]]:
            conv = index.content(key, offset, length)["conversations"]
            return content_text(conv), [m for m in conv if m["from"] != "system"]

        where: tuple[bytes, int, int] | None = None
        load: Callable[[], tuple[str, list[dict[str, str]]]] = partial(body, b"", 0, 0)
        self._raw = self.raw_texts  # a content missing it costs a line to parse: it spills
        try:
            for row, system, content in index.rows():
                if content is not where:  # a new run of rows with one conversation
                    where, load = content, partial(body, *content)
                self._add(row, system, content[0], load)
        finally:
            self._raw = self._recent_raw

    def _add(self, row: dict[str, Any], system: list[str], raw_key: bytes,
             content: Callable[[], tuple[str, list[dict[str, str]]]]) -> None:
        """Account for a schema-valid row; ``content()`` gives its text and messages if they are needed."""
        self.rows += 1
        agent = self.agents.get(row["target_agent"])
        if agent is None:  # not setdefault: building AgentStats for every row is what it costs
            agent = self.agents[row["target_agent"]] = AgentStats()
        agent.rows += 1
        base_id = row["base_id"]
        # an example's rows come together (its prompt variants): the row before often has the answer
        if base_id == self._last_base[0]:
            bidx, code = self._last_base[1], self._last_base[2]
        else:
            bidx, code = self._base(base_id, row["difficulty"])
            self._last_base = (base_id, bidx, code)
        if agent.last_base != bidx:  # its prompt variants come together: counted once is enough
            agent.last_base = bidx
            agent.add_base(bidx, code)
        weight = row.get("weight")
        if type(weight) is float and self.lo <= weight <= self.hi:  # the common case, inline
            self.weights.add(weight)
            agent.weights.add(weight)
        else:
            self._weight(weight, agent, _row_id(row))

        (tidx, first_base, words, flags), new = self._content(raw_key, bidx, row, content)
        if not new:
            if first_base == bidx:
                self.reuse_rows += 1
                agent.reuse_rows += 1
            else:
                self._duplicate(tidx, first_base, row, _row_id(row))
                agent.dup_rows += 1
        if system:
            # most rows carry one of a few prompts: looked up by text, without a call
            known = self._recent_system.get(system[0]) if len(system) == 1 else None
            flags |= self._system_flags(system, row) if known is None else known
        self.lengths.add(words)
        agent.words_sum += words
        if not flags & (_SHORT | _NO_PUNCT | _EMAIL | _PHONE):
            return
        for bit, attr in _ROW_COUNTERS:
            if flags & bit:
                setattr(self, attr, getattr(self, attr) + 1)
                setattr(agent, attr, getattr(agent, attr) + 1)
        if flags & (_EMAIL | _PHONE):
            self.pii_rows += 1
            agent.pii_rows += 1

    def _base(self, base_id: str, difficulty: Any) -> tuple[int, int]:
        """Index and difficulty code of a base example (its first row's difficulty)."""
        packed = self.bases.get(base_id)
        if packed is not None:
            return packed & _LOW32, packed >> 32
        bidx, code = self.unique_bases, self._difficulty_code(difficulty)
        self.bases.put(base_id, bidx | code << 32)
        self._base_names.append(base_id)
        self.unique_bases += 1
        self.difficulty_counts[code] += 1
        return bidx, code

    def _content(self, raw_key: bytes, bidx: int, row: dict[str, Any],
                 content: Callable[[], tuple[str, list[dict[str, str]]]]) -> tuple[_Content, bool]:
        """The record of the row's content and whether this row introduced it."""
        # rows repeating a content verbatim (the common case) skip normalization
        if raw_key == self._last_text[0]:
            return self._last_text[1], False
        packed = self._raw.get(raw_key)
        if packed is not None:
            record, new = _Content._make(_RECORD.unpack(packed)), False
        else:
            record, new = self._new_text(raw_key, bidx, row, content)
        self._last_text = (raw_key, record)
        return record, new

    def _new_text(self, raw_key: bytes, bidx: int, row: dict[str, Any],
                  content: Callable[[], tuple[str, list[dict[str, str]]]]) -> tuple[_Content, bool]:
        """Record of a content whose raw text is new: an earlier one equal once normalized, or a new one."""
        raw, body = content()
        norm = normalize_text(raw)
        digest = content_key(norm)
        packed = self.texts.get(digest)
        if packed is not None:
            self._raw.put(raw_key, packed)
            return _Content._make(_RECORD.unpack(packed)), False
        tidx = self.unique
        self.unique += 1
        self.first_bases.append(bidx)
        answer = next((m["value"] for m in reversed(body) if m["from"] == "gpt"), "")
        words = len(answer.split())
        flags = self._content_flags(body, _row_id(row), answer, words)
        if flags & (_EMAIL | _PHONE):
            self.pii_texts += 1
        record = _Content(tidx, bidx, words, flags)
        packed = _RECORD.pack(*record)
        self.texts.put(digest, packed)
        self._raw.put(raw_key, packed)
        self.index.add(norm)
        return record, True

    def _duplicate(self, tidx: int, first_base: int, row: dict[str, Any], rid: str) -> None:
        self.dup_rows += 1
        if not self.dup_texts.add(tidx):
            return
        if self.findings.wants("exact_dups"):
            other = self.base_name(first_base)
            self.findings.add("exact_dups", f"`{rid}` (base `{row['base_id']}`) repeats the "
                              f"content of base `{other}`")

    def _content_flags(self, body: list[dict[str, str]], rid: str, answer: str,
                       words: int) -> int:
        flags = self._text_flags(body, rid)
        if words < self.min_words:
            flags |= _SHORT
            if self.findings.wants("too_short"):
                self.findings.add("too_short", f"`{rid}`: {words} words: {snippet(answer, 160)}")
        if answer.strip() and not ends_with_punctuation(answer):
            flags |= _NO_PUNCT
            if self.findings.wants("no_end_punct"):
                self.findings.add("no_end_punct", f"`{rid}`: …{snippet(answer[-120:], 120)}")
        return flags

    def _difficulty_code(self, value: Any) -> int:
        name = value if isinstance(value, str) else "unknown" if value is None else str(value)
        code = self._difficulty_codes.get(name)
        if code is None:
            if len(self.difficulty_names) >= MAX_DIFFICULTY_NAMES - 1 and name != OTHER:
                return self._difficulty_code(OTHER)
            code = self._difficulty_codes[name] = len(self.difficulty_names)
            self.difficulty_names.append(name)
            self.difficulty_counts.append(0)
        return code

    def _weight(self, weight: Any, agent: AgentStats, rid: str) -> None:
        if isinstance(weight, bool) or not isinstance(weight, int | float) or math.isnan(weight):
            self.weights.missing += 1
            agent.weights.missing += 1
            if self.findings.wants("weight_missing"):
                self.findings.add("weight_missing", f"`{rid}`: weight {snippet(repr(weight), 40)}")
            return
        w = float(weight)
        self.weights.add(w)
        agent.weights.add(w)
        if not self.lo <= w <= self.hi:
            self.weights.out_of_range += 1
            agent.weights.out_of_range += 1
            if self.findings.wants("weight_out_of_range"):
                self.findings.add("weight_out_of_range", f"`{rid}`: weight {w}")

    def _text_flags(self, body: list[dict[str, str]], rid: str) -> int:
        flags = 0
        for m in body:
            # the classes its metrics and report sections count: pii_email_rows, pii_phone_rows
            for match in find_pii(m["value"], ("email", "phone")):
                flags |= _EMAIL if match.kind == "email" else _PHONE
                if self.findings.wants(f"pii_{match.kind}"):
                    self.findings.add(f"pii_{match.kind}",
                                      f"`{rid}` ({m['from']}): {mask_pii(match.text)}")
        return flags

    def _system_flags(self, system: list[str], row: dict[str, Any]) -> int:
        flags = 0
        for text in system:
            cached = self._recent_system.get(text)
            if cached is None:
                key = content_key(text)
                cached = self.system_flags.get(key)
                if cached is None:
                    cached = self._text_flags([{"from": "system", "value": text}], _row_id(row))
                    if len(self.system_flags) >= _SYSTEM_CACHE_MAX:  # bounded; misses just rescan
                        flags |= cached
                        continue
                    self.system_flags[key] = cached
                # the few prompts most rows carry, by text: no hashing of the prompt per row
                if len(self._recent_system) < _RECENT_SYSTEM and len(text) <= _RECENT_SYSTEM_CHARS:
                    self._recent_system[text] = cached
            flags |= cached
        return flags

    def base_name(self, bidx: int) -> str:
        """The base_id string of a base index (indexes follow insertion order)."""
        return self._base_names.get(bidx)

    def release_lookups(self) -> None:
        """Drop the per-row lookups (and their spill files): only the rows need them."""
        for m in (self.texts, self.raw_texts, self.bases):
            m.close()

    def close(self) -> None:
        """Release the lookups (and their spill files) and the LSH index's files."""
        self.release_lookups()
        self._base_names.close()
        self.first_bases.close()
        self.index.discard()

    def near_duplicates(self) -> tuple[int, int]:
        """Close the LSH index; count pairs across base examples and texts involved."""
        self.index.close()
        a, b, equal = self.index.pair_arrays()
        base_a, base_b = self.first_bases.take(a), self.first_bases.take(b)
        across = base_a != base_b
        for i in np.flatnonzero(across).tolist():  # in pair order, as many as are sampled
            if not self.findings.wants("near_dups"):
                break
            self.findings.add("near_dups", f"base `{self.base_name(int(base_a[i]))}` ~ base "
                              f"`{self.base_name(int(base_b[i]))}`: estimated Jaccard "
                              f"{int(equal[i]) / self.index.num_perm:.3f}")
        involved = np.unique(np.concatenate((a[across], b[across])))
        return int(across.sum()), len(involved)


def _rate(n: int, d: int) -> float:
    return n / d if d else 0.0


def _check_params(near_dup_threshold: float, min_words: int, difficulty_target: Mapping[str, float],
                  weight_range: Sequence[float], sample_size: int) -> tuple[float, float]:
    if not 0.0 < near_dup_threshold <= 1.0:
        raise ParameterError(f"near_dup_threshold must be in (0, 1], got {near_dup_threshold!r}")
    if min_words < 0 or not 0 <= sample_size <= MAX_SAMPLES:
        raise ParameterError(f"min_words must be >= 0 and sample_size in 0..{MAX_SAMPLES}")
    if len(weight_range) != 2 or weight_range[0] > weight_range[1]:
        raise ParameterError(f"weight_range must be [low, high], got {list(weight_range)!r}")
    if not difficulty_target or any(v < 0 for v in difficulty_target.values()) \
            or abs(sum(difficulty_target.values()) - 1.0) > 1e-6:
        raise ParameterError(f"difficulty_target must be shares summing to 1, got "
                             f"{dict(difficulty_target)!r}")
    return float(weight_range[0]), float(weight_range[1])


@step("audit", limits={"near_dup_threshold": {"gt": 0, "le": 1}, "min_words": (0, None),
                       "sample_size": (0, MAX_SAMPLES), "weight_range": {"size": 2, "ascending": True},
                       "difficulty_target": {"ge": 0, "total": 1}})
def audit(ctx: StepContext, *, sft_dir: WsPath = DEFAULT_SFT_DIR,
          out_dir: WsPath = DEFAULT_OUT_DIR, near_dup_threshold: float = 0.85,
          min_words: int = 20, difficulty_target: dict[str, float] = DEFAULT_DIFFICULTY_TARGET,
          weight_range: list[float] = DEFAULT_WEIGHT_RANGE, sample_size: int = 3) -> StepResult:
    """Audit the Unsloth training files: duplicates, weights, lengths, PII, difficulty mix."""
    lo_hi = _check_params(near_dup_threshold, min_words, difficulty_target, weight_range,
                          sample_size)
    root, out = ctx.path(sft_dir), ctx.path(out_dir)
    files = data_files(root)
    if not files:
        raise InputError("no training files (*.jsonl) to audit", path=root)
    metrics_path, report_path = out / "audit_metrics.json", out / "audit_report.md"
    params = {"sft_dir": sft_dir, "out_dir": out_dir, "near_dup_threshold": near_dup_threshold,
              "min_words": min_words, "difficulty_target": dict(difficulty_target),
              "weight_range": list(lo_hi), "sample_size": sample_size}
    run = StepRun(ctx, "audit", params, inputs=files, outputs=[metrics_path, report_path])
    if (cached := run.cached()) is not None:
        return cached

    acc = AuditAccumulator(near_dup_threshold=near_dup_threshold, min_words=min_words,
                           weight_range=lo_hi, sample_size=sample_size)
    try:
        for i, path in enumerate(files):
            ctx.report(f"audit: {path.name}", i / len(files))
            schema_before = acc.schema_errors
            index = RowIndex.open(ctx.workspace, ctx.rel(path), run.inputs[ctx.rel(path)], path)
            with Rejects(out / path.name) as rejects:
                if index is not None:  # build_sft's account of this very file: no row to parse twice
                    with index:
                        acc.add_indexed(index)
                else:
                    for line, row in iter_jsonl(path, rejects):
                        if (problem := acc.add(row)) is not None:
                            acc.reject(rejects, path, line, row, *problem)
            # the rejects file holds both kinds; the metrics keep them apart
            acc.rejects += rejects.count - (acc.schema_errors - schema_before)
        ctx.report("audit: near duplicates", 0.9)
        acc.release_lookups()  # before pairing the near duplicates needs memory of its own
        pairs, near_texts = acc.near_duplicates()
    finally:
        acc.close()  # stops the signing threads after an error; the error is what matters
    ctx.report("audit: writing report", 0.95)
    metrics = _metrics(acc, len(files), pairs, near_texts, difficulty_target)
    agents = {name: a.summary(acc.difficulty_names, difficulty_target)
              for name, a in sorted(acc.agents.items())}
    mix, _ = difficulty_mix(acc.difficulty_counts, acc.difficulty_names, difficulty_target)
    atomic_write_json(metrics_path, {"metrics": metrics, "agents": agents, "params": params,
                                     "difficulty": {"observed": mix,
                                                    "target": dict(difficulty_target)},
                                     "samples": acc.findings.as_dict()})
    atomic_write_text(report_path, render_report(metrics, agents, acc.findings,
                                                 dict(difficulty_target), params))
    run.record(metrics_path)
    run.record(report_path)
    log.info("audit: %d rows, %d unique texts, %d exact dup rows, %d near-dup pairs, %d PII rows",
             acc.rows, acc.unique, acc.dup_rows, pairs, acc.pii_rows)
    notes = [f"{acc.rejects} bad lines, {acc.schema_errors} schema errors"] \
        if acc.rejects or acc.schema_errors else []
    return run.finish(metrics, notes)


def _metrics(acc: AuditAccumulator, files: int, pairs: int, near_texts: int,
             target: Mapping[str, float]) -> dict[str, MetricValue]:
    mix, deviation = difficulty_mix(acc.difficulty_counts, acc.difficulty_names, target)
    m: dict[str, MetricValue] = {
        "rows": acc.rows, "files": files, "agents": len(acc.agents),
        "unique_texts": acc.unique, "unique_bases": acc.unique_bases,
        "rejects": acc.rejects, "schema_errors": acc.schema_errors,
        "exact_dup_groups": len(acc.dup_texts),
        "exact_dup_rows": acc.dup_rows, "exact_dup_rate": _rate(acc.dup_rows, acc.rows),
        "cross_agent_reuse_rows": acc.reuse_rows,
        "near_dup_pairs": pairs, "near_dup_texts": near_texts,
        "near_dup_rate": _rate(near_texts, acc.unique),
        **acc.weights.metrics("weight_"),
        "answer_words_mean": acc.lengths.mean,
        "answer_words_p50": acc.lengths.percentile(0.50),
        "answer_words_p95": acc.lengths.percentile(0.95),
        "too_short_rows": acc.too_short_rows,
        "too_short_rate": _rate(acc.too_short_rows, acc.rows),
        "no_end_punct_rows": acc.no_end_punct_rows,
        "no_end_punct_rate": _rate(acc.no_end_punct_rows, acc.rows),
        "pii_email_rows": acc.pii_email_rows, "pii_phone_rows": acc.pii_phone_rows,
        "pii_rows": acc.pii_rows, "pii_rate": _rate(acc.pii_rows, acc.rows),
        "pii_texts": acc.pii_texts,
    }
    for name in target:
        m[f"difficulty_{metric_key(name)}"] = mix.get(name, 0.0)
    m[f"difficulty_{OTHER}"] = sum(s for name, s in mix.items() if name not in target)
    m["difficulty_max_deviation"] = deviation
    return m
