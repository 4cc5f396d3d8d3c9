"""Retries with exponential backoff, full jitter and respect for ``retry-after``.

The SDKs' own retries are turned off (``max_retries=0``) so that one policy, with
one set of tests, governs every provider: rate limits (429), overload (529), server
errors (5xx), timeouts, dropped connections, malformed bodies and truncated streams
are retried; any other 4xx fails at once with the provider's message.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from roles.providers.errors import ProviderUnavailableError
from roles.providers.secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's requested wait in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    max_attempts: int = 5
    base_s: float = 1.0
    """Backoff before the second attempt; doubled each time (before jitter)."""
    cap_s: float = 30.0
    """Longest backoff between attempts."""
    max_retry_after_s: float = 120.0
    """A server asking to wait longer than this ends the retries instead."""
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        backoff = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        jittered = backoff * (0.5 + 0.5 * self.rng.random())
        if retry_after is not None:
            # never earlier than the server asked; a little jitter spreads clients that were told the same
            return float(retry_after + 0.1 * jittered)
        return float(jittered)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (ValueError, TypeError, IndexError):  # a header no client could read: as if absent
            return None
        return max(0.0, when.timestamp() - time.time()) if when else None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def with_retries(fn: Callable[[], T], policy: RetryPolicy, what: str) -> tuple[T, int]:
    """Call ``fn`` until it returns or raises a non-:class:`Transient` error; return (result, attempts)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(), attempt
        except Transient as e:
            if attempt >= policy.max_attempts:
                raise ProviderUnavailableError(
                    f"{what} failed after {attempt} attempts; last error: {redact(str(e))}") from None
            if e.retry_after is not None and e.retry_after > policy.max_retry_after_s:
                raise ProviderUnavailableError(
                    f"{what}: the server asked to retry after {e.retry_after:g}s "
                    f"(more than {policy.max_retry_after_s:g}s); giving up: {redact(str(e))}") from None
            wait = policy.delay(attempt, e.retry_after)
            log.warning("%s: %s; retry %d/%d in %.2fs", what, redact(str(e)), attempt, policy.max_attempts - 1,
                        wait)
            policy.sleep(wait)
