"""Keep API keys out of everything coord writes.

Every key the provider layer resolves (from the environment or a named env file) is
registered here; :func:`redact` masks registered values, the values of secret-named
environment variables and key-shaped strings, using the shared rules of
:mod:`roles.providers.redact` (the same ones the CLI drivers use), before text reaches an
error message, a log line, the ledger or a board.
"""

from __future__ import annotations

import threading

from roles.providers.redact import Redactor

_known: set[str] = set()
_lock = threading.Lock()


def register(secret: str) -> None:
    """Remember a secret value so :func:`redact` removes it wherever it appears."""
    if secret:
        with _lock:
            _known.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret, secret-named variable value and key-shaped token masked."""
    with _lock:
        known = sorted(_known)
    return Redactor.from_env(extra=known)(text)
