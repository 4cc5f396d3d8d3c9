"""The ``openai`` and ``openai_compatible`` providers: Chat Completions or Responses via the official SDK.

``openai_compatible`` is the same client pointed at a ``base_url`` (Ollama, vLLM, LM
Studio); it sends ``max_tokens`` instead of ``max_completion_tokens`` because local
servers know the older name.
"""

from __future__ import annotations

from typing import Any

import openai

from coordinator.core.llm import LLMRequest, Usage
from roles.providers._sdk import RawAnswer, SDKProvider
from roles.providers.config import require_key
from roles.providers.retry import Transient


class OpenAIProvider(SDKProvider):
    """OpenAI models (``config.api``: ``chat`` or ``responses``)."""

    name = "openai"
    sdk = openai

    def _make_client(self) -> Any:
        return openai.OpenAI(api_key=require_key(self.config), base_url=self.config.resolved_base_url(),
                             timeout=self.config.timeout_s, max_retries=0)

    def _send(self, request: LLMRequest) -> RawAnswer:
        if self.config.api == "responses":
            return self._responses(request)
        return self._chat(request)

    # --- Chat Completions ----------------------------------------------------------------------

    def _chat(self, request: LLMRequest) -> RawAnswer:
        messages = ([{"role": "system", "content": request.system}] if request.system else []) + \
            [{"role": m.role, "content": m.content} for m in request.messages]
        kw: dict[str, Any] = {"model": self.model, "messages": messages}
        kw["max_tokens" if self.name == "openai_compatible" else "max_completion_tokens"] = request.max_tokens
        if request.temperature is not None:
            kw["temperature"] = request.temperature
        if request.json_schema is not None:
            kw["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.schema_name, "schema": request.json_schema, "strict": False}}
        if not self.config.stream:
            r = self.client.chat.completions.create(**kw)
            if not r.choices:
                raise Transient("response had no choices")
            return RawAnswer(r.choices[0].message.content or "", r.model, _chat_usage(r.usage),
                             r.choices[0].finish_reason)
        parts: list[str] = []
        model, usage, finish = self.model, None, None
        for chunk in self.client.chat.completions.create(**kw, stream=True,
                                                         stream_options={"include_usage": True}):
            model = chunk.model or model
            if chunk.usage is not None:
                usage = _chat_usage(chunk.usage)
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
        if finish is None:
            raise Transient("stream ended before a finish_reason (truncated)")
        return RawAnswer("".join(parts), model, usage, finish)

    # --- Responses -----------------------------------------------------------------------------

    def _responses(self, request: LLMRequest) -> RawAnswer:
        kw: dict[str, Any] = {"model": self.model, "max_output_tokens": request.max_tokens,
                              "input": [{"role": m.role, "content": m.content} for m in request.messages]}
        if request.system:
            kw["instructions"] = request.system
        if request.temperature is not None:
            kw["temperature"] = request.temperature
        if request.json_schema is not None:
            kw["text"] = {"format": {"type": "json_schema", "name": request.schema_name,
                                     "schema": request.json_schema, "strict": False}}
        if not self.config.stream:
            r = self.client.responses.create(**kw)
            return _response_answer(r)
        final = None
        for event in self.client.responses.create(**kw, stream=True):
            if event.type == "response.completed":
                final = event.response
            elif event.type in ("response.failed", "error"):
                raise Transient(f"stream reported {event.type}")
        if final is None:
            raise Transient("stream ended before response.completed (truncated)")
        return _response_answer(final)


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible local server reached through ``base_url``."""

    name = "openai_compatible"


def _chat_usage(u: Any) -> Usage | None:
    if u is None:
        return None
    details = getattr(u, "prompt_tokens_details", None)
    cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    return Usage(input_tokens=int(u.prompt_tokens or 0) - cached, output_tokens=int(u.completion_tokens or 0),
                 cached_tokens=cached)


def _response_answer(r: Any) -> RawAnswer:
    u = r.usage
    usage = None
    if u is not None:
        details = getattr(u, "input_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
        usage = Usage(input_tokens=int(u.input_tokens or 0) - cached, output_tokens=int(u.output_tokens or 0),
                      cached_tokens=cached)
    stop = r.status if r.status != "incomplete" else f"incomplete: {getattr(r.incomplete_details, 'reason', None)}"
    return RawAnswer(r.output_text or "", r.model, usage, stop)
