"""The per-example rules of OpenAI chat fine-tuning files (listed in :mod:`pipeline.openai_format`).

Errors are what OpenAI documents (or its API refuses); where coord is stricter than
that, the finding is a warning whose message says so.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

TOP_LEVEL_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
ROLE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "weight", "tool_calls", "function_call", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
PART_TYPES: dict[str, frozenset[str]] = {
    "system": frozenset({"text"}), "user": frozenset({"text", "image_url"}),
    "assistant": frozenset({"text", "refusal"}), "tool": frozenset({"text"}), "function": frozenset(),
}
MAX_IMAGES_PER_EXAMPLE = 10
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ExampleChecker:
    """Checks one parsed line, calling ``add(field, code, message, warning)`` per finding."""

    def __init__(self, add: Any) -> None:
        self.add = add
        self.tool_names: set[str] = set()
        self.parallel_tool_calls: Any = None

    def check(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            self.add("(line)", "not_object", f"each line must be a JSON object, got {type(obj).__name__}")
            return
        for key in obj:
            if key == "weight":
                self.add("weight", "unknown_key", "top-level 'weight' is not allowed: OpenAI accepts only "
                         "messages, tools, parallel_tool_calls, functions; put weight 0 or 1 on assistant messages")
            elif key not in TOP_LEVEL_KEYS:
                self.add(key, "unknown_key", f"unknown top-level key {key!r}; allowed: {', '.join(TOP_LEVEL_KEYS)}")
        self._definitions(obj)
        self.parallel_tool_calls = obj.get("parallel_tool_calls")
        if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
            self.add("parallel_tool_calls", "type", "parallel_tool_calls must be true or false")
        messages = obj.get("messages")
        if messages is None:
            self.add("messages", "missing_messages", "'messages' is required")
        elif not isinstance(messages, list) or not messages:
            self.add("messages", "messages_type", "'messages' must be a non-empty list")
        else:
            self._messages(messages)

    def _definitions(self, obj: dict[str, Any]) -> None:
        for key in ("tools", "functions"):
            if key not in obj:
                continue
            defs = obj[key]
            if not isinstance(defs, list):
                self.add(key, "definitions", f"{key!r} must be a list")
                continue
            for i, d in enumerate(defs):
                fn = d.get("function") if key == "tools" and isinstance(d, dict) else d
                if key == "tools" and (not isinstance(d, dict) or d.get("type") != "function"):
                    self.add(f"tools[{i}].type", "definitions", "each tool must be {'type': 'function', 'function': {...}}")
                    continue
                where = f"tools[{i}].function" if key == "tools" else f"functions[{i}]"
                name = fn.get("name") if isinstance(fn, dict) else None
                if not isinstance(fn, dict) or not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                    self.add(f"{where}.name", "definitions", "function name must match ^[a-zA-Z0-9_-]{1,64}$")
                    continue
                if "parameters" in fn and not isinstance(fn["parameters"], dict):
                    self.add(f"{where}.parameters", "definitions", "parameters must be a JSON Schema object")
                self.tool_names.add(name)

    def _messages(self, messages: list[Any]) -> None:
        pending: dict[str, str] = {}  # unanswered call id → path of the assistant message
        assistants = trainable = images = 0
        parallel_allowed = self.parallel_tool_calls is not False
        for i, msg in enumerate(messages):
            path = f"messages[{i}]"
            if not isinstance(msg, dict):
                self.add(path, "message_type", "each message must be an object")
                continue
            role = msg.get("role")
            if role not in ROLE_KEYS:
                self.add(f"{path}.role", "invalid_role" if "role" in msg else "missing_role",
                         f"role must be one of {', '.join(ROLE_KEYS)}, got {role!r}")
                continue
            if role != "tool" and pending:
                self._unanswered(pending)
            for key in msg:
                if key not in ROLE_KEYS[role]:
                    code = "weight_not_allowed" if key == "weight" else "message_unknown_key"
                    hint = "weight is only allowed on assistant messages" if key == "weight" else \
                        f"unknown key {key!r} for a {role} message; allowed: {', '.join(sorted(ROLE_KEYS[role]))}"
                    self.add(f"{path}.{key}", code, hint)
            if "name" in msg and (not isinstance(msg["name"], str) or not msg["name"]):
                self.add(f"{path}.name", "name_type", "name must be a non-empty string")
            calls = role == "assistant" and ("tool_calls" in msg or msg.get("function_call") is not None)
            images += self._content(msg.get("content"), role, path, required=not calls)
            if role == "assistant":
                assistants += 1
                trainable += self._weight(msg, path)
                if "tool_calls" in msg:
                    calls = self._tool_calls(msg["tool_calls"], path)
                    pending.update(calls)
                    if not parallel_allowed and len(calls) > 1:
                        self.add(f"{path}.tool_calls", "parallel_tool_calls",
                                 f"{len(calls)} tool calls in one message while parallel_tool_calls is false",
                                 warning=True)
                if msg.get("function_call") is not None:
                    self._function(msg["function_call"], f"{path}.function_call")
            elif role == "tool":
                cid = msg.get("tool_call_id")
                if not isinstance(cid, str) or not cid:
                    self.add(f"{path}.tool_call_id", "tool_call_id", "tool messages need a tool_call_id string")
                elif cid not in pending:
                    self.add(f"{path}.tool_call_id", "tool_call_id",
                             f"tool_call_id {cid!r} answers no pending tool call of a preceding assistant message")
                else:
                    del pending[cid]
            elif role == "function" and not isinstance(msg.get("name"), str):
                self.add(f"{path}.name", "name_type", "function messages need the function's name")
        # calls left open by the last messages are fine: OpenAI's own function-calling
        # example ends on an assistant message with tool_calls and no tool reply
        if assistants == 0:
            self.add("messages", "no_assistant", "an example needs at least one assistant message")
        elif trainable == 0:
            self.add("messages", "no_trainable", "every assistant message has weight 0; nothing to train on",
                     warning=True)
        if images > MAX_IMAGES_PER_EXAMPLE:
            self.add("messages", "too_many_images", f"{images} images; at most {MAX_IMAGES_PER_EXAMPLE} per example")

    def _unanswered(self, pending: dict[str, str]) -> None:
        for cid, path in pending.items():
            self.add(path, "tool_call_unanswered",
                     f"tool call {cid!r} gets no tool reply before the conversation goes on; the Chat "
                     "Completions API wants one, OpenAI's fine-tuning guide does not say (coord is stricter "
                     "here, hence a warning)", warning=True)
        pending.clear()

    def _content(self, content: Any, role: str, path: str, *, required: bool) -> int:
        """Check content; return the number of images it holds."""
        if content == "" and role == "tool":
            return 0  # a tool that printed nothing: its reply is legitimately empty
        if content is None or content == "" or content == []:
            if required:
                self.add(f"{path}.content", "missing_content", f"{role} message needs non-empty content")
            return 0
        if isinstance(content, str):
            return 0
        if not isinstance(content, list):
            self.add(f"{path}.content", "content_type", "content must be a string or a list of content parts")
            return 0
        images = 0
        for j, part in enumerate(content):
            ppath = f"{path}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PART_TYPES[role]:
                allowed = ", ".join(sorted(PART_TYPES[role])) or "none (use a string)"
                self.add(ppath, "content_part", f"content part type {kind!r} is not supported for fine-tuning "
                         f"in a {role} message; allowed: {allowed}")
            elif kind == "image_url":
                images += 1
                url = part.get("image_url")
                if not isinstance(url, dict) or not isinstance(url.get("url"), str):
                    self.add(f"{ppath}.image_url", "content_part", "image_url must be {'url': str}")
            elif not isinstance(part.get(kind), str) or not part[kind]:
                self.add(f"{ppath}.{kind}", "content_part", f"{kind} part needs a non-empty string {kind!r}")
        return images

    def _weight(self, msg: dict[str, Any], path: str) -> int:
        """Check an assistant weight; return 1 when the message is trained on."""
        if "weight" not in msg:
            return 1
        w = msg["weight"]
        if isinstance(w, bool) or not isinstance(w, int | float) or w not in (0, 1):
            self.add(f"{path}.weight", "weight_value", f"weight must be 0 or 1, got {w!r} "
                     "(fractional weights are not supported; sample examples instead)")
            return 1
        return int(w)

    def _tool_calls(self, calls: Any, path: str) -> dict[str, str]:
        if not isinstance(calls, list) or not calls:
            self.add(f"{path}.tool_calls", "tool_calls_shape", "tool_calls must be a non-empty list")
            return {}
        ids: dict[str, str] = {}
        for k, call in enumerate(calls):
            cpath = f"{path}.tool_calls[{k}]"
            if not isinstance(call, dict) or set(call) - {"id", "type", "function"}:
                self.add(cpath, "tool_calls_shape", "a tool call is {'id', 'type': 'function', 'function': {...}}")
                continue
            cid = call.get("id")
            if not isinstance(cid, str) or not cid or cid in ids:
                self.add(f"{cpath}.id", "tool_calls_shape", "each tool call needs a unique non-empty string id")
            else:
                ids[cid] = cpath
            if call.get("type") != "function":
                self.add(f"{cpath}.type", "tool_calls_shape", f"type must be 'function', got {call.get('type')!r}")
            self._function(call.get("function"), f"{cpath}.function")
        return ids

    def _function(self, fn: Any, path: str) -> None:
        if not isinstance(fn, dict):
            self.add(path, "tool_calls_shape", "must be an object with 'name' and 'arguments'")
            return
        name, args = fn.get("name"), fn.get("arguments")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            self.add(f"{path}.name", "tool_calls_shape", "function name must match ^[a-zA-Z0-9_-]{1,64}$")
        elif self.tool_names and name not in self.tool_names:
            self.add(f"{path}.name", "unknown_tool", f"{name!r} is not among the example's tools", warning=True)
        if not isinstance(args, str):
            self.add(f"{path}.arguments", "tool_calls_shape",
                     f"arguments must be a string holding JSON, got {type(args).__name__}")
            return
        try:
            orjson.loads(args)
        except orjson.JSONDecodeError:
            self.add(f"{path}.arguments", "tool_calls_shape", "arguments must be valid JSON")
