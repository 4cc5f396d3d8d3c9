"""The three agent CLIs: how to call each headless, and how to read what it prints.

- ``claude -p --output-format json``: one JSON object, ``type: result`` with
  ``result``, ``session_id``, ``total_cost_usd``, ``is_error``, ``usage``.
- ``codex exec --json``: one JSON event per line (``thread.started``,
  ``item.completed``, ``turn.completed`` with ``usage``, ``turn.failed``,
  ``error``); the final message also goes to the ``--output-last-message`` file.
- ``agent -p --output-format json`` (Cursor): one JSON object like claude's,
  without cost; on failure it exits non-zero and prints no JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CliName = Literal["claude", "codex", "cursor"]


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
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Flavor:
    """One CLI: defaults, argv builder and output parser."""

    name: CliName
    executable: str
    permissions: str
    build: Callable[[CliSettings, str, Path], list[str]]
    parse: Callable[[str, Path], AgentReply]


def _model(s: CliSettings) -> list[str]:
    return ["--model", s.model] if s.model else []


def _result_object(stdout: str, cli: str) -> dict[str, Any] | None:
    """The ``type: result`` object: the whole output, or the last line that is one (stream-json)."""
    candidates = [stdout.strip()] + [ln.strip() for ln in reversed(stdout.splitlines()) if ln.strip()]
    for text in candidates:
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict) and obj.get("type") == "result":
            return obj
    return None


def _usage(raw: Any, keys: dict[str, str]) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {out: int(raw[k]) for k, out in keys.items() if isinstance(raw.get(k), int | float)}


def _parse_result(stdout: str, cli: str, *, has_cost: bool) -> AgentReply:
    obj = _result_object(stdout, cli)
    if obj is None:
        return AgentReply(ok=False, problem=f"{cli} printed no JSON result object (unparsable output)")
    text = obj.get("result") if isinstance(obj.get("result"), str) else ""
    cost = obj.get("total_cost_usd") if has_cost else None
    reply = AgentReply(ok=True, text=text or "", session_id=obj.get("session_id"),
                       cost_usd=float(cost) if isinstance(cost, int | float) else None,
                       usage=_usage(obj.get("usage"), {"input_tokens": "input_tokens",
                                                       "output_tokens": "output_tokens",
                                                       "cache_read_input_tokens": "cached_input_tokens"}),
                       extra={k: obj[k] for k in ("num_turns", "duration_ms", "subtype") if k in obj})
    if obj.get("is_error") is True or obj.get("subtype", "success") != "success":
        reply.ok = False
        reply.problem = f"{cli} reported an error ({obj.get('subtype', 'is_error')}): {(text or '').strip()[:300]}"
    return reply


def _claude_argv(s: CliSettings, prompt: str, last: Path) -> list[str]:
    # The prompt goes right after -p: options such as --allowedTools take several values and
    # would swallow a trailing positional argument.
    return [s.executable, "-p", prompt, "--output-format", "json", "--permission-mode", s.permissions,
            *_model(s), *s.flags]


def _cursor_argv(s: CliSettings, prompt: str, last: Path) -> list[str]:
    force = ["--force"] if s.permissions == "force" else []
    return [s.executable, "-p", prompt, "--output-format", "json", *force, *_model(s), *s.flags]


def _codex_argv(s: CliSettings, prompt: str, last: Path) -> list[str]:
    return [s.executable, "exec", "--json", "--sandbox", s.permissions, "--output-last-message", str(last),
            *_model(s), *s.flags, prompt]


def _codex_parse(stdout: str, last: Path) -> AgentReply:
    events, garbage = [], 0
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, ValueError):
            garbage += 1
            continue
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            events.append(obj)
        else:
            garbage += 1
    if not events:
        return AgentReply(ok=False, problem="codex printed no JSON events (unparsable output)")
    reply = AgentReply(ok=True, extra={"events": len(events), "unparsed_lines": garbage})
    messages: list[str] = []
    completed = False
    for ev in events:
        kind = ev["type"]
        if kind == "thread.started":
            reply.session_id = ev.get("thread_id")
        elif kind == "item.completed" and isinstance(ev.get("item"), dict):
            item = ev["item"]
            if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                messages.append(item["text"])
        elif kind == "turn.completed":
            completed = True
            for k, v in _usage(ev.get("usage"), {"input_tokens": "input_tokens",
                                                 "cached_input_tokens": "cached_input_tokens",
                                                 "output_tokens": "output_tokens"}).items():
                reply.usage[k] = reply.usage.get(k, 0) + v
        elif kind in ("turn.failed", "error"):
            err: dict[str, Any] = ev["error"] if isinstance(ev.get("error"), dict) else ev
            reply.ok = False
            reply.problem = f"codex reported {kind}: {str(err.get('message', '')).strip()[:300]}"
    last_text = last.read_text(encoding="utf-8", errors="replace") if last.exists() else ""
    reply.text = last_text.strip() or (messages[-1] if messages else "")
    if reply.ok and not completed:
        reply.ok = False
        reply.problem = "codex's event stream ended without turn.completed"
    return reply


FLAVORS: dict[str, Flavor] = {
    "claude": Flavor("claude", "claude", "acceptEdits", _claude_argv,
                     lambda out, last: _parse_result(out, "claude", has_cost=True)),
    "codex": Flavor("codex", "codex", "workspace-write", _codex_argv, _codex_parse),
    "cursor": Flavor("cursor", "agent", "force", _cursor_argv,
                     lambda out, last: _parse_result(out, "cursor agent", has_cost=False)),
}
"""Agent name → its CLI."""
