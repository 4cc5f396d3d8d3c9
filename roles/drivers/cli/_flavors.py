"""The three agent CLIs: how to call each headless, and how to read what it prints.

What each real CLI prints (docs/cli-agents.md has the full table, with versions):

- ``claude -p --output-format json``: one JSON object, ``type: result`` with
  ``result``, ``session_id``, ``total_cost_usd``, ``is_error``, ``usage``. With
  ``--verbose`` (a flag, or the user's own setting) the same output is one JSON
  **array** of messages ending in that object. Error results (``error_max_turns``,
  ``error_during_execution``) carry ``errors: [...]`` and no ``result``.
- ``codex exec --json`` (0.44 and later): one JSON event per line (``thread.started``,
  ``item.completed``, ``turn.completed`` with ``usage``, ``turn.failed``, ``error``).
  An ``error`` event is also how Codex reports a failure it then **retries**
  ("Reconnecting... 1/5"): only an error that no completed turn follows is fatal.
  ``usage.input_tokens`` includes ``cached_input_tokens``. Codex reports no dollars.
- ``agent -p --output-format json`` (Cursor): one JSON object like claude's, without
  cost; current builds spell ``usage`` in camelCase (``inputTokens``, ``cacheReadTokens``).
  In a workspace it has not trusted it prints a refusal and exits 0 unless ``--trust``.

Token counts are normalised here to coord's meaning (:class:`coordinator.core.llm.Usage`):
``input_tokens`` is **uncached** input, ``cached_input_tokens`` cache reads,
``cache_write_tokens`` cache writes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CliName = Literal["claude", "codex", "cursor"]
Version = tuple[int, int, int]
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class CliSettings:
    """How one role calls its CLI (from the role binding, with the flavor's defaults)."""

    executable: str
    """Program name or path."""
    model: str | None
    """Passed as ``--model`` when set."""
    permissions: str
    """claude: ``--permission-mode`` value; codex: ``--sandbox`` value; cursor: ``force`` or ``default``."""
    flags: tuple[str, ...] = ()
    """Extra arguments placed before the prompt."""
    allowed_tools: tuple[str, ...] = ()
    """claude: ``--allowedTools`` values (e.g. ``Bash(python -m pytest:*)``)."""


@dataclass
class AgentReply:
    """What the agent said it did (coord still measures the result itself)."""

    ok: bool
    text: str = ""
    problem: str | None = None
    """Why the output counts as a failure (unparsable, is_error, turn.failed)."""
    session_id: str | None = None
    cost_usd: float | None = None
    """None when the CLI does not report a cost."""
    usage: dict[str, int] = field(default_factory=dict)
    """``input_tokens`` (uncached), ``output_tokens``, ``cached_input_tokens``, ``cache_write_tokens``."""
    model: str | None = None
    """The model the CLI says it used, when it says."""
    complete: bool = False
    """A whole result was read (a final result object, or a finished turn)."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Flavor:
    """One CLI: defaults, argv builder, output parser, version floor."""

    name: CliName
    executable: str
    permissions: str
    build: Callable[[CliSettings, str, Path], list[str]]
    parse: Callable[[str, Path], AgentReply]
    finished: Callable[[str], bool]
    """True for a stdout line after which the CLI has nothing left to say (used to end a CLI
    that lingers after printing its result)."""
    min_version: Version
    min_reason: str
    """What changed at ``min_version`` that coord relies on."""
    scrub_env: tuple[str, ...] = ()
    """Variables removed from the CLI's environment (e.g. Claude Code's nested-session marker)."""
    key_env: tuple[str, ...] = ()
    """Environment variables the CLI itself reads a key from."""


def parse_version(text: str) -> Version | None:
    """The first ``X.Y.Z`` in a ``--version`` output (``2.1.39 (Claude Code)``, ``codex-cli 0.46.0``,
    ``2026.07.23-abc1234``)."""
    m = _VERSION.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def show_version(v: Version) -> str:
    """``(2026, 2, 1)`` → ``2026.02.01`` for date versions, else ``0.44.0``."""
    return f"{v[0]}.{v[1]:02d}.{v[2]:02d}" if v[0] >= 2000 else ".".join(map(str, v))


def _model(s: CliSettings) -> list[str]:
    return ["--model", s.model] if s.model else []


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None


def _is_result(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("type") == "result"


def _result_object(stdout: str) -> tuple[dict[str, Any] | None, list[Any]]:
    """The ``type: result`` object and the messages before it: the whole output (an object, or the
    verbose array), or the last line that is one (stream-json, or an array printed over lines)."""
    whole = _loads(stdout.strip())
    if _is_result(whole):
        return whole, []
    if isinstance(whole, list):
        results = [m for m in whole if _is_result(m)]
        if results:
            return results[-1], [m for m in whole if not _is_result(m)]
    lines = [_loads(ln.strip()) for ln in stdout.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if _is_result(lines[i]):
            return lines[i], lines[:i]
        if isinstance(lines[i], list) and any(_is_result(m) for m in lines[i]):
            return _result_object(json.dumps(lines[i]))
    return None, []


BAD_USAGE = "usage_unreadable"
"""Set in a reply's usage when a count the CLI reported is not a whole number ≥ 0: its cost is unknown."""


def _ints(raw: Any, keys: dict[str, str]) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    out: dict[str, int] = {}
    for k, name in keys.items():
        v = raw.get(k)
        if v is None:
            continue
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
            out[name] = out.get(name, 0) + int(v)
        else:  # a count that is negative, text or not finite is not a count: nothing is priced from it
            out[BAD_USAGE] = 1
    return out


_RESULT_USAGE = {
    # Anthropic's and Claude Code's spelling: input_tokens excludes cache reads and writes.
    "input_tokens": "input_tokens", "output_tokens": "output_tokens",
    "cache_read_input_tokens": "cached_input_tokens", "cache_creation_input_tokens": "cache_write_tokens",
    # Cursor's current spelling; inputTokens is counted apart from cache reads as well.
    "inputTokens": "input_tokens", "outputTokens": "output_tokens",
    "cacheReadTokens": "cached_input_tokens", "cacheWriteTokens": "cache_write_tokens",
}
_TRUST_REFUSAL = re.compile(r"workspace trust required|pass --trust", re.IGNORECASE)


def _parse_result(stdout: str, cli: str, *, has_cost: bool) -> AgentReply:
    obj, before = _result_object(stdout)
    if obj is None:
        if _TRUST_REFUSAL.search(stdout):
            return AgentReply(ok=False, problem=f"{cli} refused to work in a workspace it does not trust "
                              "(\"Workspace Trust Required\"): coord passes --trust; a CLI that still refuses "
                              "is older than the flag (see `coord doctor`)")
        return AgentReply(ok=False, problem=f"{cli} printed no JSON result object (unparsable output)")
    text = obj.get("result") if isinstance(obj.get("result"), str) else ""
    cost = obj.get("total_cost_usd", obj.get("cost_usd")) if has_cost else None
    model = next((m.get("model") for m in before if isinstance(m, dict) and m.get("type") == "system"
                  and isinstance(m.get("model"), str)), None)
    reply = AgentReply(ok=True, text=text or "", session_id=obj.get("session_id"), complete=True,
                       cost_usd=float(cost) if isinstance(cost, int | float) else None,
                       usage=_ints(obj.get("usage"), _RESULT_USAGE), model=model,
                       extra={k: obj[k] for k in ("num_turns", "duration_ms", "subtype") if k in obj})
    if before:
        reply.extra["messages"] = len(before)
    if obj.get("is_error") is True or obj.get("subtype", "success") != "success":
        errors = obj.get("errors")
        said = "; ".join(str(e) for e in errors if str(e).strip()) if isinstance(errors, list) else ""
        said = said or (text or "").strip() or "no message"
        reply.ok = False
        reply.problem = f"{cli} reported an error ({obj.get('subtype') or 'is_error'}): {said[:300]}"
    return reply


def _result_line(line: str) -> bool:
    obj = _loads(line.strip())
    return _is_result(obj) or (isinstance(obj, list) and any(_is_result(m) for m in obj))


def _claude_argv(s: CliSettings, prompt: str, last: Path) -> list[str]:
    # The prompt goes right after -p: options such as --allowedTools take several values and
    # would swallow a trailing positional argument.
    allowed = ["--allowedTools", *s.allowed_tools] if s.allowed_tools else []
    return [s.executable, "-p", prompt, "--output-format", "json", "--permission-mode", s.permissions,
            *_model(s), *allowed, *s.flags]


def _cursor_argv(s: CliSettings, prompt: str, last: Path) -> list[str]:
    # coord made the worktree for this task: trusting it grants no tool permission (--force does).
    force = ["--force"] if s.permissions == "force" else []
    return [s.executable, "-p", prompt, "--output-format", "json", "--trust", *force, *_model(s), *s.flags]


def _codex_argv(s: CliSettings, prompt: str, last: Path) -> list[str]:
    return [s.executable, "exec", "--json", "--sandbox", s.permissions, "--output-last-message", str(last),
            *_model(s), *s.flags, prompt]


def _codex_events(stdout: str) -> tuple[list[dict[str, Any]], int, int]:
    events: list[dict[str, Any]] = []
    garbage = legacy = 0
    for line in stdout.splitlines():
        if not line.strip():
            continue
        obj = _loads(line)
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            events.append(obj)
        elif isinstance(obj, dict) and isinstance(obj.get("msg"), dict):
            legacy += 1  # {"id": "0", "msg": {"type": "task_started"}}: codex before 0.44
        else:
            garbage += 1
    return events, garbage, legacy


def _codex_usage(raw: Any) -> dict[str, int]:
    got = _ints(raw, {"input_tokens": "input_tokens", "cached_input_tokens": "cached_input_tokens",
                      "output_tokens": "output_tokens"})
    # Codex's input_tokens counts the cached part too; coord's input is the uncached rest.
    if "input_tokens" in got:
        got["input_tokens"] = max(0, got["input_tokens"] - got.get("cached_input_tokens", 0))
    return got


def _codex_parse(stdout: str, last: Path) -> AgentReply:
    events, garbage, legacy = _codex_events(stdout)
    if not events:
        if legacy:
            return AgentReply(ok=False, problem="codex printed the --json format of releases before 0.44.0 "
                              f"({legacy} event(s) like {{\"id\":…,\"msg\":…}}); coord reads codex "
                              f"{show_version(FLAVORS['codex'].min_version)} or later: update the Codex CLI")
        return AgentReply(ok=False, problem="codex printed no JSON events (unparsable output)")
    reply = AgentReply(ok=True, extra={"events": len(events), "unparsed_lines": garbage})
    messages: list[str] = []
    pending_error: str | None = None
    retried: list[str] = []
    failed: str | None = None
    for ev in events:
        kind = ev["type"]
        if kind in ("thread.started", "session.created"):
            reply.session_id = ev.get("thread_id") or ev.get("session_id")
        elif kind == "item.completed" and isinstance(ev.get("item"), dict):
            item = ev["item"]
            if (item.get("type") or item.get("item_type")) in ("agent_message", "assistant_message") \
                    and isinstance(item.get("text"), str):
                messages.append(item["text"])
        elif kind == "turn.completed":
            reply.complete = True
            if pending_error is not None:
                retried.append(pending_error)  # the turn finished after it: Codex retried and got through
                pending_error = None
            for k, v in _codex_usage(ev.get("usage")).items():
                reply.usage[k] = reply.usage.get(k, 0) + v
        elif kind == "turn.failed":
            err: dict[str, Any] = ev["error"] if isinstance(ev.get("error"), dict) else ev
            failed = f"codex reported turn.failed: {str(err.get('message', '')).strip()[:300]}"
        elif kind == "error":
            if pending_error is not None:
                retried.append(pending_error)
            pending_error = str(ev.get("message", "")).strip()[:300]
    if retried:
        reply.extra["retried_errors"] = len(retried)
        reply.extra["last_retried_error"] = retried[-1]
    last_text = last.read_text(encoding="utf-8", errors="replace") if last.exists() else ""
    reply.text = last_text.strip() or (messages[-1] if messages else "")
    if failed is not None:
        reply.ok, reply.problem = False, failed
    elif pending_error is not None:
        reply.ok, reply.problem = False, f"codex reported error: {pending_error}"
    elif not reply.complete:
        reply.ok, reply.problem = False, "codex's event stream ended without turn.completed"
    return reply


def _codex_finished(line: str) -> bool:
    obj = _loads(line.strip())
    return isinstance(obj, dict) and obj.get("type") in ("turn.completed", "turn.failed")


FLAVORS: dict[str, Flavor] = {
    "claude": Flavor(
        "claude", "claude", "acceptEdits", _claude_argv,
        lambda out, last: _parse_result(out, "claude", has_cost=True), _result_line,
        min_version=(2, 0, 0), min_reason="the headless JSON result coord reads (total_cost_usd, usage, "
        "errors[])",
        # Claude Code 2.1.39+ refuses to start when these say it runs inside another session, which they
        # do whenever coord itself was started from a Claude Code session.
        scrub_env=("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT"), key_env=("ANTHROPIC_API_KEY",)),
    "codex": Flavor(
        "codex", "codex", "workspace-write", _codex_argv, _codex_parse, _codex_finished,
        min_version=(0, 44, 0), min_reason="`codex exec --json` prints thread/turn/item events (older "
        "releases print another format)", key_env=("CODEX_API_KEY",)),
    "cursor": Flavor(
        "cursor", "agent", "force", _cursor_argv,
        lambda out, last: _parse_result(out, "cursor agent", has_cost=False), _result_line,
        min_version=(2026, 2, 1), min_reason="--trust for headless runs in a new worktree",
        key_env=("CURSOR_API_KEY",)),
}
"""Agent name → its CLI."""
