"""Model context limits and the token estimator for OpenAI chat fine-tuning examples.

Token estimate (no tokenizer needed, documented heuristic): ``ceil(chars / 4)`` for
every text (content, names, call names and arguments, tool definitions as JSON) +
3 per message + 1 per ``name`` + 3 for the reply primer; images count 85 tokens.
"""

from __future__ import annotations

from typing import Any

import orjson

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
CONTEXT_LIMITS: tuple[tuple[str, int], ...] = (
    # Training-example limits per model family, most specific prefix first.
    ("gpt-4o-mini", 65_536), ("gpt-4o", 65_536), ("gpt-3.5-turbo-0613", 4_096),
    ("gpt-3.5-turbo", 16_385), ("gpt-4-0613", 8_192),
)
CHARS_PER_TOKEN, TOKENS_PER_MESSAGE, TOKENS_PER_NAME, REPLY_PRIMER, IMAGE_TOKENS = 4, 3, 1, 3, 85


def base_model(model: str) -> str:
    """``ft:gpt-4o-mini-2024-07-18:org::id`` → ``gpt-4o-mini-2024-07-18``; other names unchanged."""
    return model.split(":")[1] if model.startswith("ft:") else model


def context_limit(model: str) -> int | None:
    """Training-example token limit of ``model``'s family, or None when unknown."""
    name = base_model(model)
    return next((limit for prefix, limit in CONTEXT_LIMITS if name.startswith(prefix)), None)


def _text_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_tokens(example: Any) -> int:
    """Estimated tokens of one example (see module docstring); tolerant of malformed input."""
    if not isinstance(example, dict):
        return 0
    total = REPLY_PRIMER
    for key in ("tools", "functions"):
        if example.get(key):
            total += _text_tokens(orjson.dumps(example[key]).decode())
    messages = example.get("messages")
    if not isinstance(messages, list):
        return total
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        total += TOKENS_PER_MESSAGE
        content = msg.get("content")
        if isinstance(content, str):
            total += -(-len(content) // CHARS_PER_TOKEN)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    text = part.get("text") or part.get("refusal")
                    total += _text_tokens(text) if isinstance(text, str) else IMAGE_TOKENS
        if "name" in msg and isinstance(msg["name"], str):
            total += TOKENS_PER_NAME + _text_tokens(msg["name"])
        if "tool_calls" in msg or "function_call" in msg:  # most messages make no call
            total += _call_tokens(msg)
    return total


def _call_tokens(msg: dict[str, Any]) -> int:
    calls = msg.get("tool_calls")
    fns = [c.get("function") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    fns.append(msg.get("function_call"))
    total = 0
    for fn in fns:
        if isinstance(fn, dict):
            total += sum(_text_tokens(v) for v in (fn.get("name"), fn.get("arguments")) if isinstance(v, str))
    return total
