"""Streaming validation of one OpenAI chat fine-tuning file: bounded samples, complete counts.

Every line is parsed; a line that differs from one checked lately only in its system prompt
(build_sft writes each conversation under several prompts, into every agent's file) reuses that
line's findings and estimate (:class:`Bodies`), with exactly the results a full check gives.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import xxhash

from coordinator.core.io import Rejects, iter_jsonl_lines
from pipeline.openai_format._rules import ExampleChecker
from pipeline.openai_format.tokens import (
    CHARS_PER_TOKEN,
    DEFAULT_MODEL,
    TOKENS_PER_MESSAGE,
    context_limit,
    estimate_tokens,
)


@dataclass(frozen=True)
class LineError:
    """One problem: line (0 for the whole file), field path, code and message."""

    line: int
    field: str
    code: str
    message: str


@dataclass
class FileReport:
    """Validation result of one file (samples are bounded; counts are complete)."""

    path: str
    model: str
    context_limit: int | None
    examples: int = 0
    errors: int = 0
    warnings: int = 0
    tokens_estimated: int = 0
    max_example_tokens: int = 0
    error_counts: dict[str, int] = field(default_factory=dict)
    error_samples: list[LineError] = field(default_factory=list)
    warning_samples: list[LineError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """True when the file would pass every checked rule."""
        return self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form for reports."""
        return {**asdict(self), "valid": self.valid}


class _JsonErrors(Rejects):
    """A rejects sink for ``iter_jsonl`` that records unparseable lines in the report instead of a file."""

    def __init__(self, path: Path, report: _Collector) -> None:
        super().__init__(path)
        self.report = report

    def add(self, *, source: Path | str, line: int, reason: str, raw: str | bytes | None = None,
            field: str | None = None) -> None:
        self.count += 1
        self.report.add(line, "(line)", "invalid_json", reason)
        self.report.report.examples += 1


class _Collector:
    def __init__(self, report: FileReport, max_samples: int) -> None:
        self.report, self.max_samples = report, max_samples
        self.counts: Counter[str] = Counter()

    def add(self, line: int, path: str, code: str, message: str, warning: bool = False) -> None:
        r = self.report
        samples = r.warning_samples if warning else r.error_samples
        if warning:
            r.warnings += 1
        else:
            r.errors += 1
            self.counts[code] += 1
        if len(samples) < self.max_samples:
            samples.append(LineError(line, path, code, message))


_Finding = tuple[str, str, str, bool]
"""A checker's finding: field path, code, message, whether it is a warning."""
_HEAD = b'{"messages":[{"role":"system","content":'
_BODIES = 8192
"""Conversations remembered (all forgotten when full): ~2 MB at most. build_sft writes the rows of a
conversation one after another, and the same conversations into every agent's file."""
_FINDINGS_KEPT = 8
"""A conversation with more findings than this is not remembered (memory stays bounded)."""
_HEADS, _HEAD_CHARS = 256, 2048
"""System prompts whose serialized message is kept, and the longest kept (~1.5 MB at most)."""
_TRIAL = 1024
"""Conversations looked up before the memory judges itself: with fewer than one in eight seen
before (every example its own conversation), it stops, so such files pay nothing for it."""


def _system_tokens(system: str) -> int:
    """What a system message ``{"role": "system", "content": system}`` adds to the estimate."""
    return TOKENS_PER_MESSAGE - (-len(system) // CHARS_PER_TOKEN)


class Bodies:
    """Findings and token estimates of examples that differ only in their system prompt.

    A line whose bytes are ``{"messages":[{"role":"system","content":S},`` followed by a
    remainder R (S a non-empty string, serialized as orjson writes it) is checked like any
    line whose remainder is R: such a system message never has a finding, leaves nothing
    for the rest to depend on (no call pending, no assistant yet), and adds
    :func:`_system_tokens` to the estimate; R fixes everything else — even a repeated
    top-level ``messages`` key in R, which would make the object not depend on S at all,
    only matches lines whose S parses to the same string, so the same line. Every line is
    still parsed in full, so what is JSON and what is not is decided exactly as before.
    Nothing here depends on the file or the model, so the files of one step can share one.
    """

    def __init__(self) -> None:
        self._known: dict[bytes, tuple[tuple[_Finding, ...], int]] = {}
        self._heads: dict[str, tuple[bytes, int]] = {}  # system prompt → line head, its estimate
        self.lookups = self.hits = 0
        self.active = True

    def split(self, raw: bytes, obj: Any) -> tuple[int, bytes | None]:
        """What the line's system message adds to the estimate, and the key of the remainder after
        it (None when the line has not that shape, or the memory stopped)."""
        if not self.active or type(obj) is not dict:
            return 0, None
        messages = obj.get("messages")
        if type(messages) is not list or not messages or type(messages[0]) is not dict:
            return 0, None
        system = messages[0].get("content")
        if type(system) is not str or not system:
            return 0, None
        known = self._heads.get(system)
        if known is None:
            known = (b"".join((_HEAD, orjson.dumps(system), b"},")), _system_tokens(system))
            if len(system) <= _HEAD_CHARS:  # a few prompts serve most lines: keep short ones
                if len(self._heads) >= _HEADS:
                    self._heads.clear()
                self._heads[system] = known
        head, tokens = known
        if not raw.startswith(head):
            return 0, None
        return tokens, xxhash.xxh3_128_digest(memoryview(raw)[len(head):])

    def get(self, key: bytes | None) -> tuple[tuple[_Finding, ...], int] | None:
        """What a remainder with ``key`` was found to have, if it was seen lately."""
        if key is None:
            return None
        self.lookups += 1
        known = self._known.get(key)
        if known is not None:
            self.hits += 1
        elif self.lookups == _TRIAL and self.hits * 8 < self.lookups:
            self.active = False  # hardly any line shares its conversation: stop looking
            self._known.clear()
            self._heads.clear()
        return known

    def put(self, key: bytes, value: tuple[tuple[_Finding, ...], int]) -> None:
        """Remember a remainder's findings and estimate without its system message (bounded)."""
        if not self.active:
            return
        if len(self._known) >= _BODIES:
            self._known.clear()  # rows of one conversation come together: the recent ones matter
        self._known[key] = value


def validate_openai_file(path: Path, *, model: str = DEFAULT_MODEL, min_examples: int = 10,
                         max_samples: int = 50, bodies: Bodies | None = None) -> FileReport:
    """Validate one OpenAI chat fine-tuning JSONL file, streaming; see the module docstring for rules.

    ``bodies`` remembers conversations checked before (pass one to the calls for several files).
    """
    path = Path(path)
    limit = context_limit(model)
    report = FileReport(str(path), model, limit)
    col = _Collector(report, max_samples)
    if limit is None:
        col.add(0, "(file)", "unknown_model", f"no context limit known for {model!r}; token limit not checked",
                warning=True)
    bodies = bodies if bodies is not None else Bodies()
    for lineno, raw, obj in iter_jsonl_lines(path, _JsonErrors(path, col)):
        report.examples += 1
        system_tokens, key = bodies.split(raw, obj)
        known = bodies.get(key)
        if known is not None:
            findings, rest_tokens = known
            tokens = rest_tokens + system_tokens
        else:
            found: list[_Finding] = []
            ExampleChecker(lambda f, c, m, warning=False, keep=found.append: keep((f, c, m, warning))
                           ).check(obj)
            findings = tuple(found)
            tokens = estimate_tokens(obj)
            if key is not None and len(findings) <= _FINDINGS_KEPT:
                bodies.put(key, (findings, tokens - system_tokens))
        for f, c, m, warning in findings:
            col.add(lineno, f, c, m, warning)
        report.tokens_estimated += tokens
        if tokens > report.max_example_tokens:
            report.max_example_tokens = tokens
        if limit is not None and tokens > limit:
            col.add(lineno, "(example)", "too_many_tokens",
                    f"~{tokens} tokens exceeds the {limit}-token training limit of {model}; it would be truncated")
    if report.examples < min_examples:
        col.add(0, "(file)", "too_few_examples", f"{report.examples} examples; fine-tuning needs at least {min_examples}")
    report.error_counts = dict(sorted(col.counts.items()))
    return report
