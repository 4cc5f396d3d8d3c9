"""Structured outputs: ask for JSON matching a pydantic model, validate, retry once with the error.

The first answer that fails to parse or validate is sent back to the model with the
validation error; a second failure is a :class:`ModelOutputError` naming the model,
the schema and what was wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from coordinator.core.llm import Completion, LLMProvider, LLMRequest, Message
from roles.providers.errors import ModelOutputError

M = TypeVar("M", bound=BaseModel)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def extract_json(text: str) -> str:
    """The JSON object in a reply: fences stripped, prose around the outermost braces dropped."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if start != -1 and end > start else text


def parse_as(model_cls: type[M], text: str) -> M:
    """Validate a reply against ``model_cls`` (raises ValueError with a readable reason)."""
    try:
        data = json.loads(extract_json(text))
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                             for err in e.errors()[:8])
        raise ValueError(f"does not match {model_cls.__name__}: {problems}") from None


def schema_instructions(model_cls: type[BaseModel]) -> str:
    """The sentence that tells a model what to return."""
    schema = json.dumps(model_cls.model_json_schema(), separators=(",", ":"))
    return ("Reply with one JSON object only (no prose, no code fences) that validates against this "
            f"JSON Schema:\n{schema}")


def complete_structured(provider: LLMProvider, request: LLMRequest,
                        model_cls: type[M]) -> tuple[M, list[Completion]]:
    """The parsed answer and every completion it took (one, or two after a corrective retry)."""
    system = "\n\n".join(p for p in (request.system, schema_instructions(model_cls)) if p)
    req = replace(request, system=system, json_schema=model_cls.model_json_schema(),
                  schema_name=model_cls.__name__)
    first = provider.complete(req)
    try:
        return parse_as(model_cls, first.text), [first]
    except ValueError as e:
        error = _why(e, first, request.max_tokens)
    retry = replace(req, messages=(*req.messages, Message("assistant", first.text),
                                   Message("user", f"That reply was rejected: {error}. Reply again with only "
                                                   "the corrected JSON object.")))
    second = provider.complete(retry)
    try:
        return parse_as(model_cls, second.text), [first, second]
    except ValueError as e:
        raise ModelOutputError(f"{provider.name} model {provider.model!r} returned output that "
                               f"{_why(e, second, request.max_tokens)} (also after one corrective retry whose "
                               f"prompt carried the first error: {error})") from None


_CUT_OFF = ("max_tokens", "length", "incomplete: max_output_tokens")
"""Stop reasons that mean the answer ran into the output limit (Anthropic, OpenAI chat, Responses)."""


def _why(error: ValueError, answer: Completion, max_tokens: int) -> str:
    """What was wrong with an answer, to follow "output that": cut off at the output limit, else what
    parsing found."""
    if answer.stop_reason in _CUT_OFF:
        return f"was cut off at the output limit (max_tokens={max_tokens}, stop reason {answer.stop_reason!r})"
    text = str(error)
    return f"is {text}" if text.startswith("not valid JSON") else text
