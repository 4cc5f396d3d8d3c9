"""Keep API keys out of everything coord writes.

Every key the provider layer resolves (from the environment or a named env file) is
registered here; :func:`redact` masks registered values, the values of secret-named
environment variables and key-shaped strings, using the shared rules of
:mod:`roles.providers.redact` (the same ones the CLI drivers use, so a registered key is
masked in their logs too), before text reaches an error message, a log line, the ledger,
a board or a file an agent delivers.
"""

from __future__ import annotations

from roles.providers.redact import Redactor
from roles.providers.redact import register as register


def redact(text: str) -> str:
    """``text`` with every registered secret, secret-named variable value and key-shaped token masked."""
    return Redactor.from_env()(text)
