"""Streaming validation of one OpenAI chat fine-tuning file: bounded samples, complete counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coordinator.core.io import Rejects, iter_jsonl
from pipeline.openai_format._rules import ExampleChecker
from pipeline.openai_format.tokens import DEFAULT_MODEL, context_limit, estimate_tokens


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


def validate_openai_file(path: Path, *, model: str = DEFAULT_MODEL, min_examples: int = 10,
                         max_samples: int = 50) -> FileReport:
    """Validate one OpenAI chat fine-tuning JSONL file, streaming; see the module docstring for rules."""
    path = Path(path)
    limit = context_limit(model)
    report = FileReport(str(path), model, limit)
    col = _Collector(report, max_samples)
    if limit is None:
        col.add(0, "(file)", "unknown_model", f"no context limit known for {model!r}; token limit not checked",
                warning=True)
    for lineno, obj in iter_jsonl(path, _JsonErrors(path, col)):
        report.examples += 1
        checker = ExampleChecker(lambda f, c, m, warning=False, n=lineno: col.add(n, f, c, m, warning))
        checker.check(obj)
        tokens = estimate_tokens(obj)
        report.tokens_estimated += tokens
        report.max_example_tokens = max(report.max_example_tokens, tokens)
        if limit is not None and tokens > limit:
            col.add(lineno, "(example)", "too_many_tokens",
                    f"~{tokens} tokens exceeds the {limit}-token training limit of {model}; it would be truncated")
    if report.examples < min_examples:
        col.add(0, "(file)", "too_few_examples", f"{report.examples} examples; fine-tuning needs at least {min_examples}")
    report.error_counts = dict(sorted(col.counts.items()))
    return report
