"""Value types of the provider layer: requests, usage, completions, call records."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat turn sent to a model."""

    role: Role
    content: str


@dataclass(frozen=True)
class LLMRequest:
    """What to ask a model."""

    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int = 2048
    temperature: float | None = None
    json_schema: dict[str, Any] | None = None
    """Ask for JSON matching this schema (native JSON mode where the API has one)."""
    schema_name: str = "output"

    @classmethod
    def of(cls, prompt: str, **kw: Any) -> LLMRequest:
        """A one-turn request."""
        return cls(messages=(Message("user", prompt),), **kw)


@dataclass(frozen=True)
class Usage:
    """Tokens of one call, normalized across providers."""

    input_tokens: int = 0
    """Input tokens billed at the full input price (cache reads and writes excluded)."""
    output_tokens: int = 0
    cached_tokens: int = 0
    """Input tokens read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the prompt cache (Anthropic bills these apart)."""


@dataclass(frozen=True)
class Cost:
    """The price of one call; ``usd`` is None when the model has no known price."""

    usd: float | None
    flag: str | None = None
    """Why the cost is unknown, when it is."""

    @property
    def known(self) -> bool:
        """True when ``usd`` was computed from the price table."""
        return self.usd is not None


@dataclass(frozen=True)
class Completion:
    """A model's answer with its accounting."""

    text: str
    provider: str
    model: str
    usage: Usage
    cost: Cost
    duration_s: float
    attempts: int
    """HTTP attempts made (1 = no retry)."""
    stop_reason: str | None = None


@dataclass(frozen=True)
class CallRecord:
    """One paid (or possibly paid) call, as the ledger stores it. Never holds a key."""

    kind: Literal["llm", "cli", "finetune", "command", "step"]
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=lambda: Cost(0.0))
    duration_s: float = 0.0
    ok: bool = True
    error: str | None = None
    ref: str | None = None
    """An external id (fine-tuning job, session) that makes the record idempotent."""
    detail: dict[str, str | int | float | bool] | None = None
    """What else identifies the call: a CLI's version and exit code, where its price came from."""


class CallSink(Protocol):
    """Receives a record of every call (the coordinator's ledger implements it)."""

    def record(self, call: CallRecord) -> None:
        """Store one call."""
        ...


class PendingCall(Protocol):
    """A call stored before it was sent, at its worst-case cost; settled once it ends."""

    def settle(self, call: CallRecord) -> None:
        """Replace the pending record with what the call really used (or how it failed)."""
        ...


@runtime_checkable
class ReservingSink(CallSink, Protocol):
    """A sink that also prices a call before it is sent (the run's budget through a task's spend guard)."""

    def reserve(self, call: CallRecord, what: str) -> PendingCall:
        """Check ``call.cost`` — the call's worst case — against what is left of the budget
        (``BudgetExceeded`` when it does not fit, and nothing is stored) and store the call as pending."""
        ...


class LLMProvider(Protocol):
    """Anything that completes a request: a real API or the offline stand-in."""

    name: str
    model: str

    def complete(self, request: LLMRequest) -> Completion:
        """Send the request (retrying transient failures) and return the answer."""
        ...


class SpendGuard(ReservingSink, Protocol):
    """A task's view of the budget: record calls, reserve a call's worst case before it is sent, and
    check an estimate before paid work starts."""

    def check(self, estimate_usd: float | None, what: str) -> None:
        """Raise ``BudgetExceeded`` when ``estimate_usd`` does not fit what is left of the budget."""
        ...


class RunSpend(Protocol):
    """What work outside a task (a gate's reviewer model) needs of the run's budget."""

    def exhausted_for(self, role: str) -> str | None:
        """Why paid work for ``role`` must wait (its or the run's budget is used up), or None."""
        ...

    def for_task(self, task_id: str, role: str, agent: str) -> SpendGuard:
        """The spend guard that records calls under ``task_id``."""
        ...


def format_usd(usd: float | None) -> str:
    """Dollars with enough digits to tell small amounts apart: ``$12.40``, ``$0.35``, ``$0.0035``, ``$0.00004``."""
    if usd is None or not math.isfinite(usd):
        return "unknown"
    if usd == 0 or abs(usd) >= 0.995:
        return f"${usd:,.2f}"
    digits = min(8, max(2, 1 - math.floor(math.log10(abs(usd)))))  # two significant digits
    text = f"{usd:.{digits}f}"
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac[:2] + frac[2:].rstrip('0')}"
