"""scrub_pii: replace emails and phone numbers in the training files with typed placeholders.

Reads ``<in_dir>/unsloth/*.jsonl`` (field ``conversations``) and
``<in_dir>/openai/*.jsonl`` (field ``messages``) and writes the same layout under
``out_dir``. Every string inside that field is scrubbed with
:func:`pipeline.pii.scrub_text` — system prompts, user and assistant text, tool
results and tool-call arguments alike; other fields (ids, weights, labels) are
copied unchanged. A line that is not JSON, or a row without its field, goes to
``<out file>.rejects.jsonl`` and is not written.

Identical strings recur across rows (the same example trains several agents under
several prompts), so results are cached by a 16-byte digest of the string; only the
rare changed strings keep their scrubbed text. Every changed string is scanned again
after replacement and whatever is still detected counts as ``pii_remaining`` (an
unchanged string was scanned with no finding, which is the same check).

Output is a function of the input only, and scrubbing scrubbed files changes nothing,
so a second pass gives byte-identical files.

Metrics: ``files``, ``rows`` (rows written), ``unsloth_rows``, ``openai_rows``,
``rows_changed``, ``emails_replaced``, ``phones_replaced``, ``pii_remaining`` (must
be 0), ``rejects``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError
from coordinator.core.io import JsonlWriter, Rejects, data_files, iter_jsonl
from pipeline.pii import find_pii, scrub_text

log = logging.getLogger(__name__)

Layout = Literal["unsloth", "openai"]
LAYOUT_FIELDS: dict[Layout, str] = {"unsloth": "conversations", "openai": "messages"}
DEFAULT_IN_DIR, DEFAULT_OUT_DIR = WsPath("data/sft"), WsPath("data/sft_scrubbed")
_MAYBE_PII = re.compile(r"@|[0-9](?:[^0-9]*[0-9]){7}")  # an email needs "@", a phone 8 digits
_CACHE_MIN_CHARS = 64  # shorter strings are cheaper to scan than to hash
_CACHE_MAX = 500_000  # digests kept (~100 bytes each); past that, strings are just rescanned


@dataclass
class ScrubTally:
    """Counts of one scrub pass."""

    rows: int = 0
    rows_changed: int = 0
    emails: int = 0
    phones: int = 0
    remaining: int = 0
    per_layout: dict[str, int] = field(default_factory=dict)


class Scrubber:
    """Scrubs nested JSON values, caching results per distinct long string."""

    def __init__(self, tally: ScrubTally) -> None:
        self.tally = tally
        self._cache: dict[bytes, tuple[str, int, int, int] | None] = {}

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
        """Scrub one string, counting replacements; returns ``(new, changed)``."""
        if len(value) < _CACHE_MIN_CHARS:
            # labels and ids: a regex in C rules most of them out without the full scan
            if _MAYBE_PII.search(value) is None:
                return value, False
            return self._apply(self._scrub(value), value)
        key = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if key in self._cache:
            hit = self._cache[key]
            return (value, False) if hit is None else self._apply(hit, value)
        result = self._scrub(value)
        if len(self._cache) < _CACHE_MAX:
            self._cache[key] = None if result[0] is value else result
        return self._apply(result, value)

    @staticmethod
    def _scrub(value: str) -> tuple[str, int, int, int]:
        scrubbed, counts = scrub_text(value)
        if scrubbed == value:
            return value, 0, 0, 0
        # re-detect on the output: anything still found is reported, never hidden
        return scrubbed, counts["email"], counts["phone"], len(find_pii(scrubbed))

    def _apply(self, result: tuple[str, int, int, int], value: str) -> tuple[str, bool]:
        new, emails, phones, remaining = result
        self.tally.emails += emails
        self.tally.phones += phones
        self.tally.remaining += remaining
        return new, new is not value


def _inputs(root: Path) -> Iterator[tuple[Layout, Path]]:
    for layout in LAYOUT_FIELDS:
        for path in data_files(root / layout):
            yield layout, path


@step("scrub_pii")
def scrub_pii(ctx: StepContext, *, in_dir: WsPath = DEFAULT_IN_DIR,
              out_dir: WsPath = DEFAULT_OUT_DIR) -> StepResult:
    """Scrub emails and phone numbers from the Unsloth and OpenAI training files."""
    root, out = ctx.path(in_dir), ctx.path(out_dir)
    files = list(_inputs(root))
    if not files:
        raise InputError("no training files under unsloth/ or openai/", path=root)
    targets = {path: out / layout / path.name for layout, path in files}
    run = StepRun(ctx, "scrub_pii", {"in_dir": in_dir, "out_dir": out_dir},
                  inputs=[p for _, p in files], outputs=list(targets.values()))
    if (cached := run.cached()) is not None:
        return cached

    tally, rejected = ScrubTally(), 0
    scrubber = Scrubber(tally)
    for i, (layout, path) in enumerate(files):
        ctx.report(f"scrub_pii: {layout}/{path.name}", i / len(files))
        target = targets[path]
        with Rejects(target) as rejects, JsonlWriter(target) as writer:
            _scrub_file(path, LAYOUT_FIELDS[layout], scrubber, writer, rejects)
        rejected += rejects.count
        tally.per_layout[layout] = tally.per_layout.get(layout, 0) + writer.count
        run.record(target, rows=writer.count, sha256=writer.sha256, rejects=rejects.count)
    ctx.report("scrub_pii: done", 1.0)
    if tally.remaining:
        log.warning("scrub_pii: %d PII matches still detected after scrubbing", tally.remaining)
    metrics: dict[str, MetricValue] = {
        "files": len(files), "rows": tally.rows,
        "unsloth_rows": tally.per_layout.get("unsloth", 0),
        "openai_rows": tally.per_layout.get("openai", 0),
        "rows_changed": tally.rows_changed, "emails_replaced": tally.emails,
        "phones_replaced": tally.phones, "pii_remaining": tally.remaining, "rejects": rejected}
    notes = [f"{rejected} bad lines rejected"] if rejected else []
    return run.finish(metrics, notes)


def _scrub_file(path: Path, field_name: str, scrubber: Scrubber, writer: JsonlWriter,
                rejects: Rejects) -> None:
    tally = scrubber.tally
    for line, row in iter_jsonl(path, rejects):
        if not isinstance(row, dict) or not isinstance(row.get(field_name), list):
            rejects.add(source=path, line=line, field=field_name, raw=str(row)[:2000],
                        reason=f"row has no {field_name!r} list")
            continue
        row[field_name], changed = scrubber.value(row[field_name])
        tally.rows += 1
        tally.rows_changed += changed
        writer.write_obj(row)
