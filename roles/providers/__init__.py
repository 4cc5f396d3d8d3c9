"""LLM providers: Anthropic, OpenAI, OpenAI-compatible servers and the offline stand-in.

One interface (:class:`LLMProvider.complete`) with retries, timeouts, structured
outputs, usage and cost per call. Keys come from the environment only
(:mod:`roles.providers.config`) and are redacted from anything written.

May import: coordinator.core and templates. Must not import the rest of roles, reviews,
pipeline, the engine, task_boards or the CLI. The vendor SDKs load on first use.
"""

from __future__ import annotations

from coordinator.core.errors import ProviderError
from coordinator.core.llm import (
    CallRecord,
    CallSink,
    Completion,
    Cost,
    LLMProvider,
    LLMRequest,
    Message,
    Usage,
)
from roles.providers.config import PROVIDERS, ProviderConfig, key_available
from roles.providers.errors import (
    ModelOutputError,
    ProviderConfigError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from roles.providers.offline import OfflineLLM
from roles.providers.retry import RetryPolicy
from roles.providers.structured import complete_structured


def make_provider(config: ProviderConfig, *, sink: CallSink | None = None,
                  retry: RetryPolicy | None = None) -> LLMProvider:
    """A provider for ``config``; raises :class:`ProviderConfigError` when its key is missing."""
    if config.provider == "offline":
        return OfflineLLM(config.model, sink)
    if config.provider == "anthropic":
        from roles.providers.anthropic_provider import (  # optional SDK: loads on first use
            AnthropicProvider,  # optional SDK: loads on first use
        )

        return AnthropicProvider(config, sink=sink, retry=retry)
    from roles.providers.openai_provider import (  # optional SDK, as above
        OpenAICompatibleProvider,
        OpenAIProvider,
    )

    cls = OpenAIProvider if config.provider == "openai" else OpenAICompatibleProvider
    return cls(config, sink=sink, retry=retry)


__all__ = [
    "PROVIDERS", "CallRecord", "CallSink", "Completion", "Cost", "LLMProvider", "LLMRequest", "Message",
    "ModelOutputError", "ProviderConfig", "ProviderConfigError", "ProviderError", "ProviderRequestError",
    "ProviderUnavailableError", "RetryPolicy", "Usage", "complete_structured", "key_available",
    "make_provider",
]
