"""Keep API keys out of everything coord writes.

Every key the provider layer resolves is registered here; :func:`redact` replaces
registered values and anything shaped like a provider key before text reaches an
error message, a log line, the ledger or a board.
"""

from __future__ import annotations

import re
import threading

_KEY_SHAPES = re.compile(r"\b(?:sk-ant-[A-Za-z0-9_\-]{6,}|sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9_\-.]{12,})")
_known: set[str] = set()
_lock = threading.Lock()
MASK = "[redacted]"


def register(secret: str) -> None:
    """Remember a secret value so :func:`redact` removes it wherever it appears."""
    if secret and len(secret) >= 6:
        with _lock:
            _known.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret and every key-shaped token masked."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return _KEY_SHAPES.sub(MASK, text)
