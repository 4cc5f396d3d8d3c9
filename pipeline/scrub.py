"""scrub_pii: replace PII in the training files with typed placeholders, then check with a second detector.

Reads ``<in_dir>/unsloth/*.jsonl`` (field ``conversations``) and
``<in_dir>/openai/*.jsonl`` (field ``messages``) and writes the same layout under
``out_dir``. Every string inside that field is scrubbed with
:func:`pipeline.pii.scrub_text` — system prompts, user and assistant text, tool
results and tool-call arguments alike; other fields (ids, weights, labels) are
copied unchanged. A line that is not JSON, or a row without its field, goes to
``<out file>.rejects.jsonl`` and is not written.

``classes`` chooses what is scrubbed (:data:`pipeline.pii.ALL_CLASSES`); the default is
every class but ``ip`` — emails, phone numbers, card numbers, IBANs, national ids and
API keys. IP addresses in agent trajectories are mostly the private addresses of the
systems being discussed; add ``ip`` to scrub them too.

Two checks follow, on every string as written:

- ``pii_remaining``: the scrubbing detector run again on each changed string (an
  unchanged string was scanned with no finding, which is the same check). It can only
  confirm its own work: what it missed once, it misses again.
- ``pii_remaining_second``: :func:`pipeline.pii.find_pii_second`, a detector written
  apart with other methods (libphonenumber's matcher for phones, a character scan for
  emails, …), run on every string written, changed or not. What the first detector
  missed and the second sees is counted here.

A gate can require both to be 0 (the week2 plan's ``scrub_pii`` task does).

Identical strings recur across rows (the same example trains several agents under
several prompts), so results are cached: a short string by its value, a long one by a
16-byte digest; only the rare changed or flagged strings keep their result. Output is a function of the input
and the classes only, and scrubbing scrubbed files changes nothing, so a second pass
gives byte-identical files.

Metrics: ``files``, ``rows`` (rows written), ``unsloth_rows``, ``openai_rows``,
``rows_changed``, ``<class>s_replaced`` per class (``emails_replaced``,
``phones_replaced``, ``cards_replaced``, ``ibans_replaced``, ``national_ids_replaced``,
``api_keys_replaced``, ``ips_replaced``; 0 for a class not scrubbed), ``pii_replaced``
(all classes), ``pii_remaining`` and ``pii_remaining_second`` (both must be 0),
``pii_rows`` (rows in which an email or phone number is still found — the audit's figure, measured
on the scrubbed files; reported when both classes are scrubbed),
``classes`` (the scrubbed classes, comma-separated), ``rejects``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError, ParameterError
from coordinator.core.io import JsonlWriter, Rejects, data_files, iter_jsonl
from pipeline.pii import (
    ALL_CLASSES,
    DEFAULT_CLASSES,
    DETECTOR_VERSION,
    PiiKind,
    find_pii,
    find_pii_second,
    pii_classes,
    prefilter,
    scrub_text,
)

log = logging.getLogger(__name__)

Layout = Literal["unsloth", "openai"]
LAYOUT_FIELDS: dict[Layout, str] = {"unsloth": "conversations", "openai": "messages"}
DEFAULT_IN_DIR, DEFAULT_OUT_DIR = WsPath("data/sft"), WsPath("data/sft_scrubbed")
DEFAULT_SCRUB_CLASSES: list[str] = list(DEFAULT_CLASSES)  # shared default: the step only reads it
_SHORT_CHARS = 64  # shorter strings are cached by value and prefiltered; longer ones by digest
_CACHE_MAX = 500_000  # keys kept (~100 bytes each); past that, strings are just rescanned


def metric_name(kind: PiiKind) -> str:
    """The metric counting replacements of ``kind``: ``emails_replaced``, ``national_ids_replaced``…"""
    return f"{kind}s_replaced"


class _Result(NamedTuple):
    """What scrubbing one string gave."""

    text: str
    replaced: tuple[tuple[PiiKind, int], ...]
    remaining: int
    second: tuple[PiiKind, ...]
    contact: bool = False
    """An email or phone number is still found (what the audit's ``pii_rows`` counts)."""


@dataclass
class ScrubTally:
    """Counts of one scrub pass."""

    rows: int = 0
    rows_changed: int = 0
    replaced: Counter[PiiKind] = field(default_factory=Counter)
    remaining: int = 0
    second: Counter[PiiKind] = field(default_factory=Counter)
    per_layout: dict[str, int] = field(default_factory=dict)
    contact_rows: int = 0
    """Rows in which an email or phone number is still found after scrubbing."""
    contact_in_row: bool = False


class Scrubber:
    """Scrubs nested JSON values, caching results per distinct long string."""

    def __init__(self, tally: ScrubTally, classes: tuple[PiiKind, ...] = DEFAULT_CLASSES) -> None:
        self.tally = tally
        self.classes = classes
        self._maybe_pii = prefilter(classes)
        self._cache: dict[str | bytes, _Result | None] = {}

    def value(self, obj: Any) -> tuple[Any, bool]:
        """Scrub every string inside ``obj`` (dict values, list items); returns ``(new, changed)``."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, list):
            items: Any = enumerate(obj)
        elif isinstance(obj, dict):
            items = obj.items()
        else:
            return obj, False
        changed = False
        for k, item in list(items):
            new, c = self.text(item) if isinstance(item, str) else self.value(item)
            if c:
                obj[k], changed = new, True
        return obj, changed

    def text(self, value: str) -> tuple[str, bool]:
        """Scrub one string, counting replacements and what is left; returns ``(new, changed)``."""
        key: str | bytes
        if len(value) < _SHORT_CHARS:
            key = value  # labels, ids, short turns: the string is its own key
        else:
            key = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if key in self._cache:
            hit = self._cache[key]
            return (value, False) if hit is None else self._apply(hit, value)
        if len(value) < _SHORT_CHARS and self._maybe_pii.search(value) is None:
            result = _Result(value, (), 0, ())  # a regex in C rules most short strings out
        else:
            result = self._scrub(value)
        if len(self._cache) < _CACHE_MAX:
            self._cache[key] = None if result.text is value and not result.second else result
        return self._apply(result, value)

    def _scrub(self, value: str) -> _Result:
        scrubbed, counts = scrub_text(value, self.classes)
        second = tuple(m.kind for m in find_pii_second(scrubbed, self.classes))
        if scrubbed == value:
            return _Result(value, (), 0, second)
        # re-detect on the output: anything still found is reported, never hidden
        replaced = tuple((k, n) for k, n in counts.items() if n)
        left = find_pii(scrubbed, self.classes)
        return _Result(scrubbed, replaced, len(left), second, any(m.kind in ("email", "phone") for m in left))

    def _apply(self, result: _Result, value: str) -> tuple[str, bool]:
        for kind, n in result.replaced:
            self.tally.replaced[kind] += n
        self.tally.remaining += result.remaining
        self.tally.second.update(result.second)
        self.tally.contact_in_row |= result.contact
        return result.text, result.text is not value


def _inputs(root: Path) -> Iterator[tuple[Layout, Path]]:
    for layout in LAYOUT_FIELDS:
        for path in data_files(root / layout):
            yield layout, path


def _classes(names: list[str]) -> tuple[PiiKind, ...]:
    try:
        chosen = pii_classes(names)
    except ValueError as e:
        raise ParameterError(f"classes: {e}") from None
    if not chosen:
        raise ParameterError(f"classes: name at least one of {', '.join(ALL_CLASSES)}")
    return chosen


@step("scrub_pii", limits={"classes": {"min_size": 1, "unique": True, "choices": ALL_CLASSES}})
def scrub_pii(ctx: StepContext, *, in_dir: WsPath = DEFAULT_IN_DIR,
              out_dir: WsPath = DEFAULT_OUT_DIR,
              classes: list[str] = DEFAULT_SCRUB_CLASSES) -> StepResult:
    """Scrub PII (emails, phones, cards, IBANs, national ids, API keys; IPs on request) from the training files."""
    chosen = _classes(classes)
    root, out = ctx.path(in_dir), ctx.path(out_dir)
    files = list(_inputs(root))
    if not files:
        raise InputError("no training files under unsloth/ or openai/", path=root)
    targets = {path: out / layout / path.name for layout, path in files}
    params = {"in_dir": in_dir, "out_dir": out_dir, "classes": list(chosen),
              "detector": DETECTOR_VERSION}
    run = StepRun(ctx, "scrub_pii", params, inputs=[p for _, p in files],
                  outputs=list(targets.values()))
    if (cached := run.cached()) is not None:
        return cached

    tally, rejected = ScrubTally(), 0
    scrubber = Scrubber(tally, chosen)
    for i, (layout, path) in enumerate(files):
        ctx.report(f"scrub_pii: {layout}/{path.name}", i / len(files))
        target = targets[path]
        with Rejects(target) as rejects, JsonlWriter(target) as writer:
            _scrub_file(path, LAYOUT_FIELDS[layout], scrubber, writer, rejects)
        rejected += rejects.count
        tally.per_layout[layout] = tally.per_layout.get(layout, 0) + writer.count
        run.record(target, rows=writer.count, sha256=writer.sha256, rejects=rejects.count)
    ctx.report("scrub_pii: done", 1.0)
    return run.finish(_metrics(tally, files, rejected, chosen), _notes(tally, rejected))


def _metrics(tally: ScrubTally, files: list[tuple[Layout, Path]], rejected: int,
             chosen: tuple[PiiKind, ...]) -> dict[str, MetricValue]:
    metrics: dict[str, MetricValue] = {
        "files": len(files), "rows": tally.rows,
        "unsloth_rows": tally.per_layout.get("unsloth", 0),
        "openai_rows": tally.per_layout.get("openai", 0),
        "rows_changed": tally.rows_changed}
    metrics.update({metric_name(kind): tally.replaced[kind] for kind in ALL_CLASSES})
    metrics.update({
        "pii_replaced": sum(tally.replaced.values()), "pii_remaining": tally.remaining,
        "pii_remaining_second": sum(tally.second.values()), "classes": ",".join(chosen),
        "rejects": rejected})
    if {"email", "phone"} <= set(chosen):
        # the audit's figure measured again on the scrubbed files: a deferred "Scrub PII" item is resolved
        # by it, not by the task merely finishing
        metrics["pii_rows"] = tally.contact_rows
    return metrics


def _notes(tally: ScrubTally, rejected: int) -> list[str]:
    notes = [f"{rejected} bad lines rejected"] if rejected else []
    if tally.remaining:
        log.warning("scrub_pii: %d PII matches still detected after scrubbing", tally.remaining)
        notes.append(f"{tally.remaining} PII matches still found by the scrubbing detector")
    if tally.second:
        by_class = ", ".join(f"{kind} {n}" for kind, n in sorted(tally.second.items()))
        log.warning("scrub_pii: the second detector still finds %s", by_class)
        notes.append(f"second detector still finds {sum(tally.second.values())} ({by_class})")
    return notes


def _scrub_file(path: Path, field_name: str, scrubber: Scrubber, writer: JsonlWriter,
                rejects: Rejects) -> None:
    tally = scrubber.tally
    for line, row in iter_jsonl(path, rejects):
        if not isinstance(row, dict) or not isinstance(row.get(field_name), list):
            rejects.add(source=path, line=line, field=field_name, raw=str(row)[:2000],
                        reason=f"row has no {field_name!r} list")
            continue
        tally.contact_in_row = False
        row[field_name], changed = scrubber.value(row[field_name])
        tally.contact_rows += tally.contact_in_row
        tally.rows += 1
        tally.rows_changed += changed
        writer.write_obj(row)
