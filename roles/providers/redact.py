"""Remove secrets from text before it reaches a log, an error message or a board.

Three sources of secrets are recognised: the values of environment variables
whose names say they hold one (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``,
``*PASSWORD``), values :func:`register` ed by the code that read them (a key
from a role's ``env_file``, a key in a variable of any name), and strings shaped
like well-known keys (``sk-…``, ``ghp_…``, AWS access key ids, Slack tokens,
bearer headers, PEM private keys) even when they came from somewhere else, such
as a file an agent read.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SECRET_NAME = re.compile(r"(_API_KEY|_TOKEN|_SECRET|_SECRET_KEY|PASSWORD|_ACCESS_KEY)$", re.IGNORECASE)
"""Environment variable names whose values are treated as secrets."""

MIN_SECRET_LEN = 8
"""Shorter values (``1``, ``true``) are too common to redact without mangling logs."""

KEY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private-key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                               re.DOTALL)),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}")),
    ("openai-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("aws-key-id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("slack-token", re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
    ("google-key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("bearer", re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/\-]{16,}=*")),
)


_registered: set[str] = set()
_lock = threading.Lock()


def register(secret: str) -> None:
    """Remember a secret value so every :class:`Redactor` made from now on masks it."""
    if secret:
        with _lock:
            _registered.add(secret)


def registered() -> list[str]:
    """The registered secret values."""
    with _lock:
        return sorted(_registered)


@dataclass(frozen=True)
class Redactor:
    """Replaces known secret values and key-shaped strings with ``[REDACTED:<name>]``."""

    values: Mapping[str, str] = field(default_factory=dict)
    """Secret value → the name shown in its place (usually the variable name)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> Redactor:
        """A redactor for the secrets in ``env`` (default: this process's environment), the registered
        ones and ``extra``."""
        env = os.environ if env is None else env
        values = {v: k for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN}
        for i, v in enumerate([*registered(), *extra]):
            if len(v) >= MIN_SECRET_LEN:
                values.setdefault(v, f"secret{i + 1}")
        return cls(values)

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced."""
        # Longest first, so a secret that contains another is replaced whole.
        for value in sorted(self.values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, f"[REDACTED:{self.values[value]}]")
        for name, pattern in KEY_PATTERNS:
            if name == "bearer":
                text = pattern.sub(lambda m: f"{m.group(1)}[REDACTED:bearer]", text)
            else:
                text = pattern.sub(f"[REDACTED:{name}]", text)
        return text


def redact(text: str) -> str:
    """``text`` with secrets from this process's environment and key-shaped strings removed."""
    return Redactor.from_env()(text)
