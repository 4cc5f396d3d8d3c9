"""Step ``to_adp``: raw generated examples → Agent Data Protocol trajectories.

Reads ``<in_dir>/<agent>.jsonl`` (the raw-example format of ``docs/formats.md``).
Each example becomes one ADP trajectory at schema_version 1.5.0, validated
with :class:`pipeline.adp.models.Trajectory`, and lands in
``<out_dir>/<agent>.jsonl``. Turns map one to one onto ``content`` items, so
``turns[i]`` is ``content[i]``:

- user → ``text_observation`` (source ``user``).
- assistant → ``message_action``. With ``tool_call`` it becomes ``api_action``
  (``function``, ``kwargs``, the thought as ``description``); with ``code_call``
  it becomes ``code_action``. The call id becomes ``tool_call_id``.
- tool → ``text_observation`` (source ``environment``) with the call's ``tool_call_id``.

The system prompt, category, difficulty, kind, provider and seed go into
``details``, together with ``agent_compatibility`` (the agent's row of the
``compatibility`` parameter, ``{}`` without one) and ``kwargs_format: "json"``
(the arguments are plain JSON values, see :mod:`pipeline.adp.turns`). Code
languages are lower-cased. Unknown top-level keys of a raw row are ignored, but
unknown keys inside a turn are rejected, so no conversation text is lost.

A line goes to ``<out_dir>/<agent>.jsonl.rejects.jsonl`` with its field path
when it is not JSON, breaks the raw format, repeats an id, names another agent
than its file, or converts to an invalid trajectory. The field paths point into
the raw row (``turns[3].code_call.language``).

Metrics: ``trajectories``, ``rejects``, ``malformed_lines`` (not JSON / not an
object), ``raw_errors`` (raw format broken, duplicate id, wrong agent),
``validation_errors`` (converted but invalid ADP; 0 when all is well),
``api_actions``, ``code_actions``, ``message_actions``, ``tool_results``,
``multi_turn`` (trajectories with two or more user turns), ``with_calls``
(trajectories with at least one tool or code call), ``agents`` (files converted).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator import StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError, ParameterError
from coordinator.core.io import JsonlWriter, Rejects, data_files, iter_jsonl
from pipeline._spill import SpillMap
from pipeline.adp.models import WRITE_VERSION
from pipeline.adp.turns import KWARGS_FORMAT_JSON
from pipeline.adp.validate import loc_to_path, trajectory_issues

log = logging.getLogger(__name__)

DEFAULT_IN_DIR = WsPath("data/generated_examples")
DEFAULT_OUT_DIR = WsPath("data/adp")
_AGENT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RawToolCall(_Strict):
    """``turns[i].tool_call`` of a raw example."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: dict[str, Any]


class RawCodeCall(_Strict):
    """``turns[i].code_call`` of a raw example."""

    id: str = Field(min_length=1)
    language: str = Field(min_length=1)
    code: str


class RawTurn(_Strict):
    """One turn of a raw example."""

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_call: RawToolCall | None = None
    code_call: RawCodeCall | None = None
    tool_call_id: str | None = None


class RawExample(BaseModel):
    """A raw generated example (``data/generated_examples/<agent>.jsonl``)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    agent: str = Field(min_length=1)
    category: str
    difficulty: Literal["easy", "medium", "hard"]
    kind: Literal["chat", "code", "tool"]
    system: str
    provider: str | None = None
    seed: int | None = None
    turns: list[RawTurn] = Field(min_length=1)


class ConversionError(Exception):
    """A raw row that cannot become a valid trajectory; ``field`` is a raw-row path."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class _InvalidAdp(ConversionError):
    """The row parsed but its trajectory breaks the ADP schema."""


@dataclass
class _Counts:
    trajectories: int = 0
    rejects: int = 0
    malformed_lines: int = 0
    raw_errors: int = 0
    validation_errors: int = 0
    api_actions: int = 0
    code_actions: int = 0
    message_actions: int = 0
    tool_results: int = 0
    multi_turn: int = 0
    with_calls: int = 0


def _turn_rules(turns: list[RawTurn]) -> None:
    """Raise for turn shapes the types alone allow but the format forbids."""
    for i, t in enumerate(turns):
        if t.role != "assistant" and (t.tool_call or t.code_call):
            raise ConversionError(f"turns[{i}]", f"a {t.role} turn cannot make a call")
        if t.tool_call and t.code_call:
            raise ConversionError(f"turns[{i}]", "a turn has tool_call or code_call, not both")
        if (t.role == "tool") != (t.tool_call_id is not None):
            raise ConversionError(f"turns[{i}].tool_call_id",
                                  "required on tool turns" if t.role == "tool" else "only tool turns have it")
    last = turns[-1]
    if last.role != "assistant" or last.tool_call or last.code_call:
        raise ConversionError(f"turns[{len(turns) - 1}]", "the last turn must be an assistant message")


def raw_to_trajectory(ex: RawExample, compatibility: dict[str, float] | None = None) -> dict[str, Any]:
    """Build the ADP trajectory dict of one parsed raw example (not yet validated)."""
    _turn_rules(ex.turns)
    content: list[dict[str, Any]] = []
    languages: set[str] = set()
    for t in ex.turns:
        if t.role == "user":
            content.append({"class_": "text_observation", "source": "user", "content": t.content})
        elif t.role == "tool":
            content.append({"class_": "text_observation", "source": "environment",
                            "content": t.content, "tool_call_id": t.tool_call_id})
        elif t.tool_call is not None:
            content.append({"class_": "api_action", "function": t.tool_call.name,
                            "kwargs": t.tool_call.arguments, "description": t.content or None,
                            "tool_call_id": t.tool_call.id})
        elif t.code_call is not None:
            language = t.code_call.language.strip().lower()
            languages.add(language)
            content.append({"class_": "code_action", "language": language, "content": t.code_call.code,
                            "description": t.content or None, "tool_call_id": t.code_call.id})
        else:
            content.append({"class_": "message_action", "content": t.content})
    traj: dict[str, Any] = {"schema_version": WRITE_VERSION, "id": ex.id, "content": content}
    if languages:
        traj["available_code_languages"] = sorted(languages)
    traj["details"] = {
        "agent_name": ex.agent, "task_category": ex.category, "difficulty": ex.difficulty,
        "kind": ex.kind, "system_prompt": ex.system, "agent_compatibility": dict(compatibility or {}),
        "provider": ex.provider, "seed": ex.seed, "kwargs_format": KWARGS_FORMAT_JSON,
    }
    return traj


_ADP_TO_RAW = {
    "function": "tool_call.name", "kwargs": "tool_call.arguments",
    "language": "code_call.language",
}
_ADP_PATH = re.compile(r"^content\[(\d+)\](?:\.(\w+))?(.*)$")


def _raw_path(adp_path: str, traj: dict[str, Any]) -> str:
    """Map an ADP field path back into the raw row (``content[i]`` is ``turns[i]``)."""
    m = _ADP_PATH.match(adp_path)
    if not m:
        return "turns" if adp_path.startswith("available_") else adp_path
    index, name, rest = int(m.group(1)), m.group(2), m.group(3)
    kind = traj["content"][index]["class_"] if index < len(traj["content"]) else None
    if name is None:
        return f"turns[{index}]"
    call = "tool_call" if kind == "api_action" else "code_call"
    if name == "tool_call_id" and kind in ("api_action", "code_action"):
        mapped = f"{call}.id"
    elif name == "content" and kind == "code_action":
        mapped = "code_call.code"
    elif name == "description":
        mapped = "content"
    else:
        mapped = _ADP_TO_RAW.get(name, name)
    return f"turns[{index}].{mapped}{rest}"


def convert_row(obj: Any, agent: str, compatibility: dict[str, float] | None) -> dict[str, Any]:
    """Raw row → validated trajectory dict; raise :class:`ConversionError` with a raw field path."""
    try:
        ex = RawExample.model_validate(obj)
    except ValidationError as e:
        first = e.errors(include_url=False)
        reasons = "; ".join(f"{loc_to_path(err['loc']) or '(row)'}: {err['msg']}" for err in first)
        raise ConversionError(loc_to_path(first[0]["loc"]) or None, f"raw format: {reasons}") from e
    if ex.agent != agent:
        raise ConversionError("agent", f"row is for agent {ex.agent!r} but the file is {agent!r}")
    traj = raw_to_trajectory(ex, compatibility)
    issues = trajectory_issues(traj)
    if issues:
        reasons = "; ".join(f"{i.path}: {i.message}" for i in issues)
        raise _InvalidAdp(_raw_path(issues[0].path, traj), f"ADP validation: {reasons}")
    return traj


def _count(traj: dict[str, Any], counts: _Counts) -> None:
    kinds = [item["class_"] for item in traj["content"]]
    sources = [item.get("source") for item in traj["content"]]
    api, code = kinds.count("api_action"), kinds.count("code_action")
    counts.trajectories += 1
    counts.api_actions += api
    counts.code_actions += code
    counts.message_actions += kinds.count("message_action")
    counts.tool_results += sources.count("environment")
    counts.multi_turn += sources.count("user") >= 2
    counts.with_calls += bool(api or code)


def _convert_file(src: Path, out: Path, agent: str, compatibility: dict[str, float] | None,
                  counts: _Counts) -> tuple[JsonlWriter, int]:
    converted_rejects = 0
    # ids seen in this file: a dict while small, then on disk (memory stays bounded)
    with SpillMap[str, int]() as seen, Rejects(out) as rejects, JsonlWriter(out) as writer:
        for lineno, obj in iter_jsonl(src, rejects):
            try:
                if not isinstance(obj, dict):
                    raise ConversionError(None, f"expected a JSON object, got {type(obj).__name__}")
                traj = convert_row(obj, agent, compatibility)
                if traj["id"] in seen:
                    raise ConversionError("id", f"duplicate id {traj['id']!r}")
            except ConversionError as e:
                if isinstance(e, _InvalidAdp):
                    counts.validation_errors += 1
                elif isinstance(obj, dict):
                    counts.raw_errors += 1
                else:
                    counts.malformed_lines += 1
                rejects.add(source=src, line=lineno, reason=e.reason, field=e.field,
                            raw=orjson.dumps(obj).decode())
                converted_rejects += 1
                continue
            seen.put(traj["id"], 1)
            writer.write_obj(traj)
            _count(traj, counts)
        # iter_jsonl sent the lines that are not JSON at all straight to the sink
        counts.malformed_lines += rejects.count - converted_rejects
        rejected = rejects.count
    return writer, rejected


def _check_params(agents: list[str] | None, compatibility: dict[str, dict[str, float]] | None) -> None:
    for name in agents or ():
        if not _AGENT_NAME.match(name):
            raise ParameterError(f"agents: {name!r} is not a plain agent name")
    for row, cols in (compatibility or {}).items():
        if not isinstance(cols, dict):
            raise ParameterError(f"compatibility[{row!r}] must map agent names to weights")
        for col, w in cols.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0.0 <= w <= 1.0:
                raise ParameterError(f"compatibility[{row!r}][{col!r}] must be a number in [0, 1], got {w!r}")


@step("to_adp", limits={"agents": {"pattern": _AGENT_NAME.pattern}, "compatibility": (0, 1)})
def to_adp(ctx: StepContext, *, in_dir: WsPath = DEFAULT_IN_DIR,
           out_dir: WsPath = DEFAULT_OUT_DIR, agents: list[str] | None = None,
           compatibility: dict[str, dict[str, float]] | None = None) -> StepResult:
    """Convert raw examples to validated ADP trajectories, one output file per agent."""
    _check_params(agents, compatibility)
    src_dir, dst_dir = ctx.path(in_dir), ctx.path(out_dir)
    if agents is None:
        sources = data_files(src_dir) if src_dir.is_dir() else []
    else:
        sources = [src_dir / f"{a}.jsonl" for a in agents]
        if missing := [ctx.rel(p) for p in sources if not p.is_file()]:
            raise InputError(f"no raw examples for {missing}", path=ctx.rel(src_dir))
    if not sources:
        raise InputError("no *.jsonl raw example files to convert", path=ctx.rel(src_dir))
    outputs = [dst_dir / p.name for p in sources]
    params = {"in_dir": in_dir, "out_dir": out_dir, "agents": agents, "compatibility": compatibility}
    run = StepRun(ctx, "to_adp", params, inputs=sources, outputs=outputs)
    if (cached := run.cached()) is not None:
        return cached
    counts = _Counts()
    notes: list[str] = []
    for n, (src, out) in enumerate(zip(sources, outputs, strict=True)):
        agent = src.stem
        ctx.report(f"to_adp: {agent}", n / len(sources))
        row = None
        if compatibility is not None:
            row = compatibility.get(agent)
            if row is None:
                notes.append(f"compatibility has no row for agent {agent!r}; stored {{}}")
        before = counts.trajectories
        writer, rejected = _convert_file(src, out, agent, row, counts)
        run.record(out, rows=writer.count, sha256=writer.sha256, rejects=rejected)
        log.info("to_adp %s: %d trajectories, %d rejects", agent, counts.trajectories - before, rejected)
        if rejected:
            notes.append(f"{agent}: {rejected} rejected lines in {ctx.rel(out)}.rejects.jsonl")
    counts.rejects = counts.malformed_lines + counts.raw_errors + counts.validation_errors
    metrics: dict[str, Any] = {**asdict(counts), "agents": len(sources)}
    ctx.report("to_adp: done", 1.0)
    return run.finish(metrics, notes)
