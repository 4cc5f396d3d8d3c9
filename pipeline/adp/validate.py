"""Validate ADP files and report every error with its file, line or index, and field path.

A file is either a JSON array of trajectories (the upstream ``sample_std.json``
form) or JSONL with one trajectory per line. The content decides, not the
extension: a file whose first non-blank byte is ``[`` is an array. Otherwise
it is read as JSONL, except that a non-``.jsonl`` file holding a single object
counts as one trajectory. JSONL is streamed, so memory stays flat; an array is
parsed whole (upstream samples are small).

Errors are located as ``file:line`` (JSONL) or ``file[index]`` (array), with
field paths such as ``content[3].tool_call_id``.

Each trajectory is validated by its own ``schema_version``. Warnings (message →
number of trajectories) say how a version was read (none given, 1.3.1), and one
line per file lists why upstream's current loader would reject trajectories that
their own version allows (:func:`pipeline.adp.models.current_loader_objections`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from coordinator.core.errors import InputError
from coordinator.core.io import Rejects, iter_jsonl
from pipeline.adp.models import (
    CURRENT_VERSION,
    ITEM_CLASSES,
    Issue,
    Trajectory,
    TrajectoryIssues,
    cross_field_issues,
    current_loader_objections,
    objections_line,
    raw_item_view,
    version_warning,
)

log = logging.getLogger(__name__)

FileFormat = Literal["jsonl", "json"]


@dataclass(frozen=True)
class AdpError:
    """One problem in one trajectory of one file."""

    file: str
    line: int | None
    """1-based line number, for JSONL files."""
    index: int | None
    """0-based position, for JSON array files."""
    trajectory_id: str | None
    """The trajectory's ``id`` when it has a readable one."""
    path: str
    """Field path (``content[3].tool_call_id``); empty for the record as a whole."""
    message: str

    def location(self) -> str:
        """``file:line`` or ``file[index]``."""
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.index is not None:
            return f"{self.file}[{self.index}]"
        return self.file

    def __str__(self) -> str:
        return f"{self.location()} {self.path or '(record)'}: {self.message}"


@dataclass
class AdpReport:
    """What validating one file found."""

    file: str
    format: FileFormat | None = None
    trajectories: int = 0
    """Records read (valid or not)."""
    valid: int = 0
    invalid: int = 0
    error_count: int = 0
    """All errors found, even past ``max_errors``."""
    errors: list[AdpError] = field(default_factory=list)
    """The errors kept (all of them unless capped)."""
    versions: dict[str, int] = field(default_factory=dict)
    """Trajectories per schema_version as written (``"(missing)"`` when absent)."""
    warnings: dict[str, int] = field(default_factory=dict)
    """Warning message → how many trajectories it applies to."""
    read_error: str | None = None
    """Why the file could not be read at all (set by :func:`validate_adp_files`)."""

    @property
    def ok(self) -> bool:
        """True when the file was readable and every trajectory is valid."""
        return self.read_error is None and self.invalid == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for ``--json`` output and metrics)."""
        data = asdict(self)
        data["ok"] = self.ok
        return data


def trajectory_issues(obj: Any) -> list[Issue]:
    """Every problem of one trajectory (any JSON value); empty when it is valid."""
    try:
        Trajectory.model_validate(obj)
    except ValidationError as e:
        return _issues_from(e, obj)
    return []


def _issues_from(error: ValidationError, obj: Any) -> list[Issue]:
    issues: list[Issue] = []
    cross_field_checked = False
    for err in error.errors(include_url=False):
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, TrajectoryIssues):
            issues.extend(cause.issues)
            cross_field_checked = True
            continue
        issues.append(Issue(loc_to_path(err["loc"]), _message(err)))
    # The model checks tool_call_id links only once every item parsed; check the raw
    # items as well so one broken item does not hide the other problems.
    if not cross_field_checked and isinstance(obj, Mapping):
        version = obj.get("schema_version", CURRENT_VERSION)
        content = obj.get("content")
        if isinstance(version, str) and isinstance(content, list):
            issues.extend(cross_field_issues(version, obj.keys(), [raw_item_view(i) for i in content]))
    return issues


def _current_loader_objections(obj: Mapping[str, Any]) -> list[str]:
    """Objections of upstream's current loader to a trajectory valid under its own version."""
    version = obj.get("schema_version", CURRENT_VERSION)
    content = obj.get("content")
    if not isinstance(version, str) or not isinstance(content, list):
        return []
    return current_loader_objections(version, obj.keys(), [raw_item_view(i) for i in content])


def loc_to_path(loc: Sequence[int | str]) -> str:
    """Pydantic error location → ``content[3].tool_call_id`` (union tags dropped)."""
    out = ""
    after_index = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            after_index = True
            continue
        if after_index and part in ITEM_CLASSES:
            after_index = False  # the discriminator tag pydantic adds after a list index
            continue
        out += f".{part}" if out else str(part)
        after_index = False
    return out


def _message(err: Mapping[str, Any]) -> str:
    if err["type"] == "union_tag_not_found":
        return f"missing 'class_' (one of {', '.join(ITEM_CLASSES)})"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


class _ErrorSink(Rejects):
    """A rejects sink that reports unparseable lines instead of writing a file."""

    def __init__(self, path: Path, report: AdpReport, keep: int | None) -> None:
        super().__init__(path)
        self._report = report
        self._keep = keep

    def add(self, *, source: Path | str, line: int, reason: str, raw: str | bytes | None = None,
            field: str | None = None) -> None:
        self.count += 1
        self._report.trajectories += 1
        self._report.invalid += 1
        _keep_error(self._report, AdpError(str(source), line, None, None, "", reason), self._keep)

    def close(self) -> None:
        """Nothing to close: no file is written."""


def _keep_error(report: AdpReport, error: AdpError, keep: int | None) -> None:
    report.error_count += 1
    if keep is None or len(report.errors) < keep:
        report.errors.append(error)


def _sniff(path: Path) -> FileFormat:
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip()
    return "json" if head.startswith(b"[") else "jsonl"


def _records(path: Path, fmt: FileFormat, sink: _ErrorSink) -> Iterator[tuple[int | None, int | None, Any]]:
    """Yield ``(line, index, record)``."""
    if fmt == "jsonl":
        if path.suffix != ".jsonl":
            single = _single_object(path)
            if single is not None:
                yield None, 0, single
                return
        for lineno, obj in iter_jsonl(path, sink):
            yield lineno, None, obj
        return
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e}", path=path) from e
    if not isinstance(data, list):
        raise InputError("expected a JSON array of trajectories", path=path)
    for index, obj in enumerate(data):
        yield None, index, obj


def _single_object(path: Path) -> dict[str, Any] | None:
    """The object of a pretty-printed one-trajectory ``.json`` file, else None."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if not head.lstrip().startswith(b"{") or b"\n{" in head.strip():
        return None
    try:
        obj = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def validate_adp_file(path: Path | str, *, max_errors: int | None = None) -> AdpReport:
    """Validate every trajectory of one file; raise :class:`InputError` if it cannot be read.

    ``max_errors`` caps how many errors are kept (all are counted).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file" if not path.exists() else "not a file", path=path)
    try:
        fmt = _sniff(path)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=path) from e
    report = AdpReport(file=str(path), format=fmt)
    sink = _ErrorSink(path, report, max_errors)
    versions: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    objections: Counter[str] = Counter()
    objected = 0
    try:
        for line, index, obj in _records(path, fmt, sink):
            report.trajectories += 1
            if isinstance(obj, Mapping):
                version = obj.get("schema_version")
                versions["(missing)" if version is None else str(version)] += 1
                if (version is None or isinstance(version, str)) and (note := version_warning(version)):
                    warnings[note] += 1
            issues = trajectory_issues(obj)
            if not issues:
                report.valid += 1
                if reasons := _current_loader_objections(obj):
                    objected += 1
                    objections.update(reasons)
                continue
            report.invalid += 1
            traj_id = obj.get("id") if isinstance(obj, Mapping) else None
            traj_id = traj_id if isinstance(traj_id, str) else None
            for issue in issues:
                _keep_error(report, AdpError(str(path), line, index, traj_id, issue.path, issue.message),
                            max_errors)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=path) from e
    if report.trajectories == 0:
        warnings["file holds no trajectories"] += 1
    if objected:
        warnings[objections_line(objections)] = objected
    report.versions = dict(sorted(versions.items()))
    report.warnings = dict(warnings)
    log.debug("validated %s: %d trajectories, %d invalid", path, report.trajectories, report.invalid)
    return report


def validate_adp_files(paths: Sequence[Path | str], *, max_errors: int | None = None) -> list[AdpReport]:
    """Validate several files; an unreadable one gets a report with ``read_error`` set."""
    reports = []
    for p in paths:
        try:
            reports.append(validate_adp_file(p, max_errors=max_errors))
        except InputError as e:
            reports.append(AdpReport(file=str(p), read_error=str(e)))
    return reports


def exit_code(reports: Sequence[AdpReport]) -> int:
    """0 when every file is readable and valid, 2 when any file is unreadable, else 1."""
    if any(r.read_error is not None for r in reports):
        return 2
    return 0 if all(r.ok for r in reports) else 1
