"""Faults the loopback LLM server can inject into its next responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["status", "slow", "malformed", "truncated", "drop", "body", "usage", "stream_error"]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, consumed by the next matching request."""

    kind: FaultKind
    status: int = 500
    """HTTP status for ``status`` faults."""
    message: str = "injected fault"
    """Error message the provider puts in its error body."""
    retry_after: float | str | None = None
    """Seconds, or the raw header text (a server may send anything)."""
    """Seconds sent as ``retry-after`` (429/503)."""
    seconds: float = 0.0
    """Delay before answering, for ``slow`` faults."""
    body: bytes = b""
    """What a ``body`` fault answers with status 200 (HTML, JSON of another shape)."""
    content_type: str = "application/json"
    usage: dict[str, object] | None = None
    """For ``usage`` faults: the usage fields the otherwise normal answer reports instead (None: none)."""

    @classmethod
    def http(cls, status: int, message: str = "injected fault", retry_after: float | str | None = None) -> Fault:
        """Answer with an error status (429 rate limit, 500, 400, …)."""
        return cls("status", status=status, message=message, retry_after=retry_after)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Sleep before answering normally (the client should time out first)."""
        return cls("slow", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not valid JSON."""
        return cls("malformed")

    @classmethod
    def truncated(cls) -> Fault:
        """Start a stream and close the connection before its final event."""
        return cls("truncated")

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without any response."""
        return cls("drop")

    @classmethod
    def body_of(cls, body: bytes, content_type: str = "application/json") -> Fault:
        """Answer 200 with this body: valid HTTP, but not the API's shape."""
        return cls("body", body=body, content_type=content_type)

    @classmethod
    def usage_of(cls, usage: dict[str, object] | None) -> Fault:
        """Answer normally but report these usage fields (or no usage at all)."""
        return cls("usage", usage=usage)

    @classmethod
    def stream_error(cls, kind: str = "overloaded_error", message: str = "Overloaded") -> Fault:
        """Start an Anthropic stream, then send an ``error`` event in it (its HTTP status stays 200)."""
        return cls("stream_error", status=200, message=f"{kind}:{message}")
