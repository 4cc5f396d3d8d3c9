"""The ``offline`` provider: a deterministic, free stand-in that never leaves the machine.

It answers with a labeled digest of the prompt, or, when JSON is requested, the
smallest instance of the schema (strings say they came from the offline provider).
It costs nothing and says so; no model is pretended.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from coordinator.core.llm import CallRecord, CallSink, Completion, Cost, LLMRequest, Usage

LABEL = "offline provider (no model was called)"


def _instance(schema: dict[str, Any], defs: dict[str, Any], label: str) -> Any:
    if "$ref" in schema:
        return _instance(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, label)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return _instance(schema[key][0], defs, label)
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _instance(v, defs, label) for k, v in props.items() if k in schema.get("required", props)}
    if kind == "array":
        return [_instance(schema["items"], defs, label)] if schema.get("minItems") else []
    return {"string": label, "integer": 0, "number": 0.0, "boolean": False, "null": None}.get(str(kind), label)


class OfflineLLM:
    """Deterministic answers at zero cost."""

    name = "offline"

    def __init__(self, model: str = "offline", sink: CallSink | None = None) -> None:
        self.model = model
        self.sink = sink

    def complete(self, request: LLMRequest) -> Completion:
        """Answer from the prompt alone."""
        prompt = "\n".join(m.content for m in request.messages)
        if request.json_schema is not None:
            text = json.dumps(_instance(request.json_schema, request.json_schema.get("$defs", {}), LABEL))
        else:
            digest = hashlib.sha256(prompt.encode()).hexdigest()[:12]
            text = f"Answer by the {LABEL}; prompt fingerprint {digest}."
        usage = Usage(input_tokens=len(prompt.split()), output_tokens=len(text.split()))
        if self.sink is not None:
            self.sink.record(CallRecord("llm", self.name, self.model, usage=usage, cost=Cost(0.0)))
        return Completion(text, self.name, self.model, usage, Cost(0.0), 0.0, 1, "end_turn")
