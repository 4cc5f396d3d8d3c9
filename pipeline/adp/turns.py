"""ADP trajectory → chat turns for supervised fine-tuning.

Turns have the shape of the raw examples in ``docs/formats.md``, plus a
``system`` role. Each content item becomes exactly one turn, in order, and a
``system`` turn comes first when ``details.system_prompt`` is set:

- ``message_action`` → assistant. The content is the thought, then the message.
  A message wrapped whole in ``<finish> … </finish>`` loses that wrapper: ADP
  converters add it as an end-of-episode marker, and the agent never said it.
  ``<solution>`` tags are kept, because the task prompts ask the agent for them.
  An empty ``<finish> </finish>`` with no thought gives an assistant turn with
  empty content; writers of training files leave such turns out.
- ``api_action`` → assistant with ``tool_call``. ``code_action`` → assistant
  with ``code_call``. In both, the content is the thought.
- The thought is ``reasoning_content`` as a ``<think>`` block, followed by
  ``description``. Either part may be missing.
- An observation that answers a call becomes a ``tool`` turn with that call's id.
  It answers the call whose ``tool_call_id`` it carries (1.3.0 and later). Without
  ids (older data) results pair by position, block by block: a block is a run of
  consecutive calls without an id, and the environment observations right after
  it are its results. They answer the block's last calls in order: one result
  answers the call right before it (the pairs upstream's converters link), k
  results after k calls answer them one by one. Earlier calls of the block stay
  unanswered, and so does a block followed by anything else (a message, a user or
  agent observation), so a call followed by a user message is never handed the
  output of a later call.
- A call may have no result at all: legal ADP (an id-less ``api_action`` nothing
  answers, such as a closing ``finish``). It becomes a call turn with no tool turn.
- Other observations go by ``source``: user and environment → user, agent → assistant.
  Web pages render as URL plus accessibility tree (or HTML). Images render as a path line.
- Calls without an id get ``call_NNNNNN`` ids. The numbers count up within the
  trajectory and skip ids it already uses, so the output is deterministic.

Arguments are never rewritten: ``kwargs`` become the call's arguments exactly as
stored. Upstream converters often keep a string argument as its source literal,
quotes included (``"\\"Europe/London\\""``), but the same shape is also the literal
text of a code edit (``old_str`` ``'"1.0.0"'`` in SWE data). Only the producer
knows which, and the trajectory records what the agent sent.
"""

from __future__ import annotations

import re
from typing import Any, Literal, NotRequired, Required, TypedDict

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
"""``details.kwargs_format`` value coord writes: its kwargs are plain JSON values.

Kept for readers of coord's ADP files; coord itself never rewrites kwargs of any trajectory.
"""

_CALLS = (ApiAction, CodeAction)
_TEXT_OR_IMAGE = (TextObservation, ImageObservation)
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
    turns: list[Turn] = []
    system = model.details.get("system_prompt")
    if isinstance(system, str) and system:
        turns.append({"role": "system", "content": system})
    call_ids = _CallIds(model)
    ids = {index: call_ids.take(item.tool_call_id) for index, item in enumerate(model.content)
           if isinstance(item, _CALLS)}
    answers = _positional_answers(model.content, ids)
    for index, item in enumerate(model.content):
        if isinstance(item, _CALLS):
            call_id = ids[index]
            thought = _thought(item.reasoning_content, item.description)
            if isinstance(item, ApiAction):
                turns.append({"role": "assistant", "content": thought, "tool_call": {
                    "id": call_id, "name": item.function, "arguments": dict(item.kwargs)}})
            else:
                turns.append({"role": "assistant", "content": thought, "code_call": {
                    "id": call_id, "language": item.language, "code": item.content}})
        elif isinstance(item, MessageAction):
            message = _strip_finish(item.content)
            turns.append({"role": "assistant", "content": _join(_thought(item.reasoning_content,
                                                                         item.description), message)})
        else:
            linked = item.tool_call_id if item.tool_call_id is not None else answers.get(index)
            turns.append(_observation_turn(item, linked))
    return turns


def _positional_answers(content: list[Any], ids: dict[int, str]) -> dict[int, str]:
    """Observation index → the call it answers, for results without ids (see the module docstring)."""
    answers: dict[int, str] = {}
    i = 0
    while i < len(content):
        if not _idless_call(content[i]):
            i += 1
            continue
        end_calls = i
        while end_calls < len(content) and _idless_call(content[end_calls]):
            end_calls += 1
        end_results = end_calls
        while end_results < len(content) and _idless_result(content[end_results]):
            end_results += 1
        n = min(end_calls - i, end_results - end_calls)
        for offset in range(n):
            answers[end_calls + offset] = ids[end_calls - n + offset]
        i = end_results
    return answers


def _idless_call(item: Any) -> bool:
    return isinstance(item, _CALLS) and item.tool_call_id is None


def _idless_result(item: Any) -> bool:
    if isinstance(item, WebObservation):
        return item.tool_call_id is None
    return isinstance(item, _TEXT_OR_IMAGE) and item.tool_call_id is None \
        and item.source == "environment"


def _observation_turn(item: TextObservation | ImageObservation | WebObservation, answers: str | None) -> Turn:
    text = _observation_text(item)
    if answers is not None:
        return {"role": "tool", "content": text, "tool_call_id": answers}
    source = "environment" if isinstance(item, WebObservation) else item.source
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
