"""The ``anthropic`` provider: the official SDK's Messages API (JSON or SSE stream).

``LLMRequest.temperature`` is not sent: the installed SDK's ``messages.create`` has no
such parameter any more.
"""

from __future__ import annotations

from typing import Any

import anthropic

from coordinator.core.llm import LLMRequest, Usage
from roles.providers._sdk import RawAnswer, SDKProvider
from roles.providers.config import require_key
from roles.providers.retry import Transient


class AnthropicProvider(SDKProvider):
    """Claude models through ``client.messages.create``."""

    name = "anthropic"
    sdk = anthropic

    def _make_client(self) -> Any:
        return anthropic.Anthropic(api_key=require_key(self.config), base_url=self.config.resolved_base_url(),
                                   timeout=self.config.timeout_s, max_retries=0)

    def _send(self, request: LLMRequest) -> RawAnswer:
        kw: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens,
                              "messages": [{"role": m.role, "content": m.content} for m in request.messages]}
        if request.system:
            kw["system"] = request.system
        # no sampling temperature: current Messages API clients no longer take one
        if not self.config.stream:
            msg = self.client.messages.create(**kw)
            if not isinstance(msg.content, list):
                raise Transient(f"malformed response body (content is {type(msg.content).__name__}, not a list)")
            text = "".join(b.text for b in msg.content if getattr(b, "type", None) == "text")
            return RawAnswer(text, msg.model, _usage(msg.usage) if msg.usage is not None else None, msg.stop_reason)
        parts: list[str] = []
        model, usage, stop, finished = self.model, None, None, False
        for event in self.client.messages.create(**kw, stream=True):
            if event.type == "message_start":
                model, usage = event.message.model, event.message.usage
            elif event.type == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
                parts.append(event.delta.text)
            elif event.type == "message_delta":
                stop = event.delta.stop_reason
                if usage is not None:
                    usage = usage.model_copy(update={"output_tokens": event.usage.output_tokens})
            elif event.type == "message_stop":
                finished = True
        if not finished:
            raise Transient("stream ended before message_stop (truncated)")
        return RawAnswer("".join(parts), model, _usage(usage) if usage is not None else None, stop)


def _usage(u: Any) -> Usage:
    return Usage(input_tokens=int(u.input_tokens or 0), output_tokens=int(u.output_tokens or 0),
                 cached_tokens=int(getattr(u, "cache_read_input_tokens", 0) or 0),
                 cache_write_tokens=int(getattr(u, "cache_creation_input_tokens", 0) or 0))
