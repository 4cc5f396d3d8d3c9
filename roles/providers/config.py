"""Provider configuration and API-key resolution.

Keys come only from environment variables, or from an env file the user names
(``env_file`` on the role, or ``COORD_ENV_FILE``). A key lives in memory inside
the SDK client; it is never copied into a config object, state, or any file
coord writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coordinator.core.plan import RoleBinding
from roles.providers import secrets
from roles.providers.errors import ProviderConfigError
from roles.providers.redact import SECRET_NAME

ProviderName = Literal["anthropic", "openai", "openai_compatible", "offline"]
PROVIDERS: tuple[ProviderName, ...] = ("anthropic", "openai", "openai_compatible", "offline")
DEFAULT_KEY_ENV: dict[str, str | None] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "openai_compatible": "OPENAI_COMPATIBLE_API_KEY",
    "offline": None,
}
DEFAULT_BASE_URL_ENV = {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL",
                        "openai_compatible": "OPENAI_COMPATIBLE_BASE_URL"}
DEFAULT_TIMEOUT_S = 120.0
NO_KEY = "not-needed"
"""Sent to local OpenAI-compatible servers (Ollama, vLLM, LM Studio) that take no key."""


@dataclass(frozen=True)
class ProviderConfig:
    """Which provider and model to call, and how. Holds the *name* of the key's variable, never the key."""

    provider: ProviderName
    model: str
    base_url: str | None = None
    """Override the API endpoint (required for ``openai_compatible``)."""
    api_key_env: str | None = None
    """Environment variable holding the key (default per provider, e.g. ``ANTHROPIC_API_KEY``)."""
    env_file: str | None = None
    """A dotenv-style file to read the key from when the variable is not set."""
    api: Literal["chat", "responses"] = "chat"
    """OpenAI API flavour: Chat Completions or Responses."""
    stream: bool = False
    """Stream the answer (SSE); a stream that ends early is retried."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Seconds one HTTP request may take (the role's ``timeout``); a request that takes longer is retried."""

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ProviderConfigError(f"unknown provider {self.provider!r}; known: {', '.join(PROVIDERS)}")
        if self.provider == "openai_compatible" and not self.resolved_base_url():
            raise ProviderConfigError("provider 'openai_compatible' needs a base_url "
                                      "(e.g. http://127.0.0.1:11434/v1 for Ollama)")

    @property
    def key_env(self) -> str | None:
        """The variable the key is read from."""
        return self.api_key_env or DEFAULT_KEY_ENV[self.provider]

    def resolved_base_url(self) -> str | None:
        """``base_url``, else the provider's base-URL environment variable."""
        env = DEFAULT_BASE_URL_ENV.get(self.provider)
        return self.base_url or (os.environ.get(env) if env else None) or None


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv-style file (``export`` prefixes, quotes and comments allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ProviderConfigError(f"cannot read env file: {e.strerror}", file=str(path)) from None
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            raise ProviderConfigError("expected KEY=value", file=str(path), line=n)
        name, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name.strip()] = value
    return out


def env_file_for(config: ProviderConfig) -> Path | None:
    """The env file to consult: the config's, else ``COORD_ENV_FILE``."""
    name = config.env_file or os.environ.get("COORD_ENV_FILE")
    return Path(name).expanduser() if name else None


def find_key(config: ProviderConfig) -> str | None:
    """The key for ``config`` from the environment or its env file, or None."""
    var = config.key_env
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        path = env_file_for(config)
        if path is not None and path.exists():
            found = read_env_file(path)
            value = found.get(var)
            for name, other in found.items():  # the file is the user's store of secrets: mask all of them
                if SECRET_NAME.search(name):
                    secrets.register(other)
    if value:
        secrets.register(value)
    return value or None


def require_key(config: ProviderConfig) -> str:
    """The key, or a clear error naming the variable (local compatible servers need none)."""
    key = find_key(config)
    if key:
        return key
    if config.provider == "openai_compatible":
        return NO_KEY
    where = f" or in {env_file_for(config)}" if env_file_for(config) else ""
    raise ProviderConfigError(f"provider {config.provider!r} needs an API key: set {config.key_env}{where} "
                              "(keys are read from the environment only and never stored)")


def key_available(config: ProviderConfig) -> bool:
    """True when the provider can be called: a key is set, or none is needed."""
    return config.provider in ("offline", "openai_compatible") or find_key(config) is not None


def provider_config(binding: RoleBinding) -> ProviderConfig:
    """The provider settings of a role binding (never a key: only the variable's name)."""
    return ProviderConfig(binding.provider or "offline", binding.model or "offline", base_url=binding.base_url,
                          api_key_env=binding.api_key_env, env_file=binding.env_file, api=binding.api,
                          stream=binding.stream, timeout_s=binding.timeout or DEFAULT_TIMEOUT_S)
