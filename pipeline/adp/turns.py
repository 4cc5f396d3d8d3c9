"""ADP trajectory → chat turns for supervised fine-tuning.

Turns have the shape of the raw examples in ``docs/formats.md``, plus a
``system`` role. Each content item becomes exactly one turn, in order, and a
``system`` turn comes first when ``details.system_prompt`` is set:

- ``message_action`` → assistant. The content is the thought, then the message.
  A message wrapped whole in ``<finish> … </finish>`` loses that wrapper: ADP
  converters add it as an end-of-episode marker, and the agent never said it.
  ``<solution>`` tags are kept, because the task prompts ask the agent for them.
- ``api_action`` → assistant with ``tool_call``. ``code_action`` → assistant
  with ``code_call``. In both, the content is the thought.
- The thought is ``reasoning_content`` as a ``<think>`` block, followed by
  ``description``. Either part may be missing.
- An observation that answers a call becomes a ``tool`` turn with that call's
  id. An observation answers a call when it carries the call's
  ``tool_call_id``. Before 1.3.0 there are no ids, so an environment
  observation answers the oldest unanswered call instead.
- Other observations go by ``source``: user and environment → user, agent → assistant.
  Web pages render as URL plus accessibility tree (or HTML). Images render as a path line.
- Calls without an id (data before 1.3.0) get ``call_NNNNNN`` ids. The numbers
  count up within the trajectory and skip ids it already uses, so the output is
  deterministic.

Quoted kwargs. Upstream converters often store string arguments as their
source literal, quotes included (``"\\"Europe/London\\""``). A string argument
that is exactly one quoted literal, in JSON double quotes or Python single
quotes, is therefore decoded to the bare string. Other values pass through
unchanged. Coord's own trajectories hold plain JSON values and say so with
``details.kwargs_format == "json"``. Their arguments are never unquoted, so a
real argument such as ``'"exact phrase"'`` survives the round trip.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from typing import Any, Literal, NotRequired, Required, TypedDict

import orjson

from pipeline.adp.models import (
    ApiAction,
    CodeAction,
    ImageObservation,
    MessageAction,
    TextObservation,
    Trajectory,
    WebObservation,
)

Role = Literal["system", "user", "assistant", "tool"]
KWARGS_FORMAT_JSON = "json"
"""``details.kwargs_format`` value marking kwargs as plain JSON values (never unquoted)."""

_FINISH = re.compile(r"\A\s*<finish>(.*)</finish>\s*\Z", re.DOTALL)


class ToolCall(TypedDict):
    """A function call made by the assistant."""

    id: str
    name: str
    arguments: dict[str, Any]


class CodeCall(TypedDict):
    """Code the assistant runs."""

    id: str
    language: str
    code: str


class Turn(TypedDict, total=False):
    """One chat turn (the raw-example turn shape plus ``system``)."""

    role: Required[Role]
    content: Required[str]
    tool_call: NotRequired[ToolCall]
    code_call: NotRequired[CodeCall]
    tool_call_id: NotRequired[str]


def trajectory_to_turns(traj: Trajectory | dict[str, Any]) -> list[Turn]:
    """Convert one trajectory (validated first when given as a dict) to chat turns."""
    model = traj if isinstance(traj, Trajectory) else Trajectory.model_validate(traj)
    unquote = model.details.get("kwargs_format") != KWARGS_FORMAT_JSON
    turns: list[Turn] = []
    system = model.details.get("system_prompt")
    if isinstance(system, str) and system:
        turns.append({"role": "system", "content": system})
    ids = _CallIds(model)
    pending: deque[str] = deque()
    for item in model.content:
        if isinstance(item, ApiAction):
            call_id = ids.take(item.tool_call_id)
            pending.append(call_id)
            kwargs = {k: _unquote(v) for k, v in item.kwargs.items()} if unquote else dict(item.kwargs)
            turns.append({"role": "assistant", "content": _thought(item.reasoning_content, item.description),
                          "tool_call": {"id": call_id, "name": item.function, "arguments": kwargs}})
        elif isinstance(item, CodeAction):
            call_id = ids.take(item.tool_call_id)
            pending.append(call_id)
            turns.append({"role": "assistant", "content": _thought(item.reasoning_content, item.description),
                          "code_call": {"id": call_id, "language": item.language, "code": item.content}})
        elif isinstance(item, MessageAction):
            message = _strip_finish(item.content)
            thought = _thought(item.reasoning_content, item.description)
            turns.append({"role": "assistant", "content": _join(thought, message)})
        else:
            turns.append(_observation_turn(item, pending))
    return turns


def _observation_turn(item: TextObservation | ImageObservation | WebObservation,
                      pending: deque[str]) -> Turn:
    text = _observation_text(item)
    if item.tool_call_id is not None:
        if item.tool_call_id in pending:
            pending.remove(item.tool_call_id)
        return {"role": "tool", "content": text, "tool_call_id": item.tool_call_id}
    source = "environment" if isinstance(item, WebObservation) else item.source
    if source == "environment" and pending:
        return {"role": "tool", "content": text, "tool_call_id": pending.popleft()}
    return {"role": "assistant" if source == "agent" else "user", "content": text}


def _observation_text(item: TextObservation | ImageObservation | WebObservation) -> str:
    if isinstance(item, TextObservation):
        return item.content
    if isinstance(item, ImageObservation):
        return _image_text(item)
    parts = []
    if item.url:
        parts.append(f"URL: {item.url}")
    page = item.axtree if item.axtree is not None else item.html
    if page:
        parts.append(page)
    if item.image_observation is not None:
        parts.append(_image_text(item.image_observation))
    return "\n".join(parts)


def _image_text(image: ImageObservation) -> str:
    lines = [f"[image: {image.content}]"]
    for a in image.annotations or ():
        box = a.bounding_box
        label = a.text if a.text is not None else a.content_description or ""
        lines.append(f"- {a.element_type} {label!r} at ({box.x:g}, {box.y:g}, {box.width:g}, {box.height:g})")
    return "\n".join(lines)


def _thought(reasoning: str | None, description: str | None) -> str:
    think = f"<think>\n{reasoning}\n</think>" if reasoning else ""
    return _join(think, description or "")


def _join(first: str, second: str) -> str:
    if first and second:
        return f"{first.rstrip()}\n\n{second}"
    return first or second


def _strip_finish(content: str) -> str:
    match = _FINISH.match(content)
    return match.group(1).strip() if match else content


def _unquote(value: Any) -> Any:
    """Decode a string that is exactly one quoted literal; leave anything else alone."""
    if not isinstance(value, str) or len(value) < 2 or value[0] != value[-1] or value[0] not in "\"'":
        return value
    try:
        decoded = orjson.loads(value) if value[0] == '"' else ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    return decoded if isinstance(decoded, str) else value


class _CallIds:
    """Hands out call ids: the action's own, or the next free ``call_NNNNNN``."""

    def __init__(self, traj: Trajectory) -> None:
        self._used = {i.tool_call_id for i in traj.content if i.tool_call_id is not None}
        self._next = 1

    def take(self, own: str | None) -> str:
        if own is not None:
            return own
        while (candidate := f"call_{self._next:06d}") in self._used:
            self._next += 1
        self._used.add(candidate)
        return candidate
