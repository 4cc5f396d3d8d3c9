"""One Unsloth/ShareGPT training row → one OpenAI chat fine-tuning example.

The row's ``conversations`` use ``from`` ∈ system, human, gpt, function_call
(value: JSON text ``{"name", "arguments"}``), observation. The example is
``{"messages": [...]}`` plus ``tools`` when the row carries tool definitions.

- system → system, human → user, gpt → assistant. Blank messages are left out
  (they train nothing, and OpenAI's format needs content).
- A function_call joins the assistant message right before it (its thought, or
  the calls made since the last result): calls made with no result in between
  are one assistant message with several ``tool_calls``, the thoughts of the later
  calls joined to its content by a blank line. Call ids are ``call_000001``… in
  order of the calls.
- An observation answers a call: the call whose ``tool_call_id`` it carries when
  the row links them (rows whose pairing position alone would get wrong do), else
  the oldest call not yet answered. It becomes a ``tool`` message when that call
  belongs to the assistant message the replies are still coming for, and a user
  message otherwise (a result that arrives after the conversation moved on).
- A call nobody answers keeps its place: as the last message (the shape of
  OpenAI's function-calling example) or, mid-conversation, with no reply.
- Function names OpenAI cannot take (outside ``^[a-zA-Z0-9_-]{1,64}$``) are mapped
  the same way in calls and definitions: other characters become ``_``, the name is
  cut to 64 characters, and an empty one becomes ``_``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.openai_format.tokens import CHARS_PER_TOKEN, TOKENS_PER_MESSAGE, estimate_tokens

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_OPT = orjson.OPT_NON_STR_KEYS
"""The options of ``coordinator.core.io.dumps_line`` but the newline: pieces of its lines."""


def openai_function_name(name: str) -> str:
    """``name`` when OpenAI accepts it, else its mapped form (see the module docstring)."""
    return _NAME_CHARS.sub("_", name)[:64] or "_"


def openai_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tool definitions with their function names mapped for OpenAI."""
    out = []
    for tool in tools:
        fn = dict(tool.get("function") or {})
        if isinstance(fn.get("name"), str):
            fn["name"] = openai_function_name(fn["name"])
        out.append({**tool, "function": fn})
    return out


class _Messages:
    """The OpenAI messages being built, and the assistant message whose calls await replies."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.awaiting: dict[str, Any] | None = None
        """The assistant message with tool_calls that tool replies may still follow."""
        self.unanswered: set[str] = set()
        self.replied = False

    def add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.awaiting = None

    def call(self, tool_call: dict[str, Any]) -> None:
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(tool_call)
        else:
            last = {"role": "assistant", "tool_calls": [tool_call]}
            self.messages.append(last)
        if self.awaiting is not last:
            self.awaiting, self.unanswered, self.replied = last, set(), False
        self.unanswered.add(tool_call["id"])

    def thought(self, text: str) -> None:
        """Text right before a call: joins the awaiting message while no reply came yet."""
        if self.awaiting is not None and not self.replied and self.messages[-1] is self.awaiting:
            before = self.awaiting.get("content")
            self.awaiting["content"] = f"{before}\n\n{text}" if before else text
        else:
            self.add({"role": "assistant", "content": text})

    def result(self, call_id: str | None, text: str) -> None:
        if self.awaiting is not None and call_id in self.unanswered:
            self.unanswered.discard(call_id)
            self.replied = True
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif text.strip():
            self.add({"role": "user", "content": text})


def unsloth_to_openai(row: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one Unsloth row to an OpenAI chat fine-tuning example (``messages``, and ``tools`` if any)."""
    conv = row["conversations"]
    linked = any("tool_call_id" in m for m in conv)
    out = _Messages()
    ids: dict[str, str] = {}  # the row's call id → the example's
    oldest: deque[str] = deque()  # calls not yet answered, for rows paired by position
    calls = 0
    for i, m in enumerate(conv):
        frm, value = m["from"], m["value"]
        if frm == "function_call":
            call = orjson.loads(value)
            calls += 1
            call_id = f"call_{calls:06d}"
            if linked:
                ids[str(m.get("tool_call_id"))] = call_id
            else:
                oldest.append(call_id)
            args = call.get("arguments", {})
            out.call({"id": call_id, "type": "function", "function": {
                "name": openai_function_name(str(call["name"])),
                "arguments": args if isinstance(args, str) else orjson.dumps(args).decode()}})
        elif frm == "observation":
            answers = ids.get(str(m.get("tool_call_id"))) if linked else (oldest.popleft() if oldest else None)
            out.result(answers, value)
        elif not value.strip():
            continue
        elif frm == "gpt":
            if i + 1 < len(conv) and conv[i + 1]["from"] == "function_call":
                out.thought(value)
            else:
                out.add({"role": "assistant", "content": value})
        else:
            out.add({"role": "system" if frm == "system" else "user", "content": value})
    example: dict[str, Any] = {"messages": out.messages}
    if tools := row.get("tools"):
        example["tools"] = openai_tools(tools)
    return example


@dataclass(frozen=True)
class ConvertedBody:
    """A conversation (no system prompt) converted once, for the many rows that differ only in it.

    :func:`unsloth_to_openai` turns a leading system prompt into a first system message (none
    when it is blank) and converts the rest the same way whatever that prompt was, and
    :func:`~pipeline.openai_format.tokens.estimate_tokens` is a sum over messages; so the
    example and estimate of ``[system, *conversation]`` follow from this one without redoing
    either (``tests/pipeline/test_sft.py`` checks that build_sft's files equal the plain
    conversion).
    """

    messages: tuple[dict[str, Any], ...]
    """The converted messages; shared by every example built from them, never changed."""
    tools: list[dict[str, Any]] | None
    """Tool definitions as OpenAI gets them, or None."""
    tokens: int
    """Estimated tokens of the example without a system message."""
    messages_json: bytes = field(init=False, repr=False, compare=False)
    """``messages`` as the JSON array a JSONL line holds."""
    after_system: bytes = field(init=False, repr=False, compare=False)
    """What follows a system message in that array: ``,m1,m2,…]`` (``]`` without messages)."""
    tools_json: bytes = field(init=False, repr=False, compare=False)
    """``,"tools":[…]`` as a line holds it when there are tools, else empty."""

    def __post_init__(self) -> None:
        # serialized once here, spliced into every line by :meth:`line_under`
        messages = orjson.dumps(list(self.messages), option=_OPT)
        object.__setattr__(self, "messages_json", messages)
        # messages_json is "[m1,m2,…]": its first bracket is the one a line's head opens
        object.__setattr__(self, "after_system", b"," + messages[1:] if self.messages else b"]")
        tools = b',"tools":' + orjson.dumps(self.tools, option=_OPT) if self.tools else b""
        object.__setattr__(self, "tools_json", tools)

    @classmethod
    def of(cls, conversation: Sequence[Mapping[str, Any]],
           tools: Sequence[Mapping[str, Any]] | None) -> ConvertedBody:
        """Convert a conversation that holds no system message."""
        example = unsloth_to_openai({"conversations": conversation, "tools": tools})
        return cls(tuple(example["messages"]), example.get("tools"), estimate_tokens(example))

    def example(self, system: str) -> tuple[dict[str, Any], int]:
        """``unsloth_to_openai`` of the row ``[system, *conversation]``, and its token estimate."""
        tokens = self.tokens
        if system.strip():
            messages = [{"role": "system", "content": system}, *self.messages]
            tokens += TOKENS_PER_MESSAGE - (-len(system) // CHARS_PER_TOKEN)
        else:
            messages = list(self.messages)
        example: dict[str, Any] = {"messages": messages}
        if self.tools:
            example["tools"] = self.tools
        return example, tokens

    def line(self, system: str) -> tuple[bytes, int]:
        """:meth:`example` as the JSONL line ``dumps_line`` makes of it, spliced from bytes serialized
        once (the line's only new part is the system message), and its token estimate."""
        return self.line_under(system_head(system))

    def line_under(self, head: SystemHead | None) -> tuple[bytes, int]:
        """:meth:`line` for the :func:`system_head` of the system prompt (None: a blank prompt)."""
        if head is None:
            return b"".join((b'{"messages":', self.messages_json, self.tools_json, b"}\n")), self.tokens
        return b"".join((head[0], self.after_system, self.tools_json, b"}\n")), self.tokens + head[1]


SystemHead = tuple[bytes, int]
"""A line's start up to its system message included, and the tokens that message adds."""


def system_head(system: str) -> SystemHead | None:
    """The start of the line of an example under the system prompt ``system``, and what its system
    message adds to the token estimate; None when the prompt is blank (the example has no system
    message then)."""
    if not system.strip():
        return None
    head = b'{"messages":[' + orjson.dumps({"role": "system", "content": system}, option=_OPT)
    return head, TOKENS_PER_MESSAGE - (-len(system) // CHARS_PER_TOKEN)
