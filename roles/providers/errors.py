"""Errors of the LLM provider layer, split by whose fault they are."""

from __future__ import annotations

from coordinator.core.errors import ConfigError, ProviderError


class ProviderConfigError(ConfigError):
    """The user misconfigured a provider: unknown name, missing key, bad env file."""


class ProviderRequestError(ProviderError):
    """The provider refused the request (a non-retryable 4xx); carries the provider's own message."""

    def __init__(self, provider: str, status: int, message: str) -> None:
        self.provider = provider
        self.status = status
        self.provider_message = message
        super().__init__(f"{provider} rejected the request (HTTP {status}): {message}")


class ProviderUnavailableError(ProviderError):
    """Retries were exhausted on rate limits, server errors, timeouts or broken connections."""


class ModelOutputError(ProviderError):
    """The model's output did not match the requested structure, even after one corrective retry."""
