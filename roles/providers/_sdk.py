"""Shared machinery of SDK-backed providers: retries, error mapping, timing, pricing, recording."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from coordinator.core.errors import ProviderError
from coordinator.core.llm import (
    CallRecord,
    CallSink,
    Completion,
    Cost,
    LLMRequest,
    PendingCall,
    ReservingSink,
    Usage,
)
from roles.providers.config import ProviderConfig
from roles.providers.errors import ProviderRequestError
from roles.providers.pricing import cost_of, price_source, worst_case_cost
from roles.providers.retry import RetryPolicy, Transient, parse_retry_after, with_retries
from roles.providers.secrets import redact

log = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RawAnswer:
    """What one successful HTTP exchange produced, before pricing."""

    text: str
    model: str
    usage: Usage | None
    """None when the server reported no usage (some compatible servers when streaming)."""
    stop_reason: str | None


def provider_message(exc: Any) -> str:
    """The provider's own error message from an SDK status error."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return str(getattr(exc, "message", None) or exc)


def _error_type(exc: Any) -> str | None:
    """The ``error.type`` of an SDK status error's body, when it has one."""
    body = getattr(exc, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    return kind if isinstance(kind, str) else None


def classify(provider: str, exc: BaseException, sdk: ModuleType, timeout_s: float) -> BaseException:
    """Map an SDK or transport exception to :class:`Transient`, :class:`ProviderRequestError` or itself."""
    if isinstance(exc, Transient | ProviderError):
        return exc
    if isinstance(exc, sdk.APITimeoutError):
        return Transient(f"request timed out after {timeout_s:g}s")
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return Transient(f"connection error ({type(cause).__name__ if cause else 'no response'})")
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        msg = redact(provider_message(exc))
        if status < 400:  # an error event inside a 200 stream (Anthropic's overloaded_error mid-answer)
            kind = _error_type(exc)
            if kind in ("invalid_request_error", "authentication_error", "permission_error", "not_found_error"):
                return ProviderRequestError(provider, status, f"{kind} in the stream: {msg}")
            return Transient(f"error event in the answer's stream ({kind or 'unnamed'}): {msg}")
        if status in RETRYABLE_STATUS or status >= 500:
            return Transient(f"HTTP {status}: {msg}", parse_retry_after(exc.response.headers))
        return ProviderRequestError(provider, status, msg)
    if isinstance(exc, json.JSONDecodeError | sdk.APIResponseValidationError):
        return Transient(f"malformed response body ({type(exc).__name__}: {str(exc)[:120]})")
    if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore"):
        return Transient(f"transport error ({type(exc).__name__})")
    return exc


class SDKProvider:
    """Base of the Anthropic and OpenAI providers: subclasses implement :meth:`_send`."""

    name: str = "sdk"
    sdk: ModuleType

    def __init__(self, config: ProviderConfig, *, sink: CallSink | None = None, retry: RetryPolicy | None = None,
                 client: Any = None) -> None:
        self.config = config
        self.model = config.model
        self.sink = sink
        self.retry = retry or RetryPolicy()
        self.client = client if client is not None else self._make_client()

    def _make_client(self) -> Any:
        raise NotImplementedError

    def _send(self, request: LLMRequest) -> RawAnswer:
        raise NotImplementedError

    def _once(self, request: LLMRequest) -> RawAnswer:
        try:
            return self._send(request)
        except (AttributeError, TypeError, KeyError, ValueError) as e:
            if isinstance(e, json.JSONDecodeError):  # classify says what it is
                raise classify(self.name, e, self.sdk, self.config.timeout_s) from None
            # a 200 whose body is not the API's shape (HTML, fields missing or of the wrong type)
            raise Transient(f"malformed response body ({type(e).__name__}: {redact(str(e))[:120]})") from None
        except BaseException as e:
            mapped = classify(self.name, e, self.sdk, self.config.timeout_s)
            if mapped is e:
                raise
            raise mapped from None

    def complete(self, request: LLMRequest) -> Completion:
        """Send ``request`` with retries; record the call (success or failure) to the sink.

        A sink that reserves (a task's spend guard) gets the call before it is sent, at its worst
        case from the prompt and ``max_tokens`` — refused with ``BudgetExceeded`` when that does not
        fit the budget — and the pending record is settled with what the call really used.
        """
        pending = self._reserve(request)
        started = time.monotonic()
        try:
            raw, attempts = with_retries(lambda: self._once(request), self.retry, f"{self.name} {self.model}")
        except BaseException as e:  # the reservation is settled whatever ended the call
            charged = Cost(0.0) if isinstance(e, ProviderError) else Cost(
                None, f"the call to {self.name} failed ({type(e).__name__}); what it was charged is unknown")
            self._record(pending, CallRecord("llm", self.name, self.model, cost=charged,
                                             duration_s=time.monotonic() - started, ok=False,
                                             error=redact(str(e))))
            raise
        model = redact(raw.model)  # a server may report anything as its model, even a key it was sent
        priced_as = raw.model
        impossible = _impossible(raw.usage)
        if impossible:
            usage, cost = Usage(), Cost(None, f"{self.name} reported impossible token usage for {model!r} "
                                              f"({impossible}); never priced")
        elif raw.usage is None:
            usage, cost = Usage(), Cost(None, f"{self.name} reported no token usage for {model!r}")
        else:
            usage = raw.usage
            cost = cost_of(raw.model, usage, provider=self.name)
            if not cost.known and raw.model != self.model:
                priced_as, cost = self.model, cost_of(self.model, usage, provider=self.name)
        if cost.flag:
            cost = Cost(None, redact(cost.flag))
            log.warning("%s %s: %s; cost recorded as unknown", self.name, model, cost.flag)
        done = Completion(text=raw.text, provider=self.name, model=model, usage=usage, cost=cost,
                          duration_s=round(time.monotonic() - started, 3), attempts=attempts,
                          stop_reason=raw.stop_reason)
        source = price_source(priced_as, provider=self.name) if cost.known else None
        self._record(pending, CallRecord("llm", self.name, model, usage=usage, cost=cost,
                                         duration_s=done.duration_s,
                                         detail={"price_source": source} if source else None))
        return done

    def _reserve(self, request: LLMRequest) -> PendingCall | None:
        if not isinstance(self.sink, ReservingSink):
            return None
        worst = worst_case_cost(self.model, request, provider=self.name)
        return self.sink.reserve(CallRecord("llm", self.name, self.model, cost=worst),
                                 f"{self.name} {self.model} call (up to {request.max_tokens} output tokens)")

    def _record(self, pending: PendingCall | None, call: CallRecord) -> None:
        if pending is not None:
            pending.settle(call)
        elif self.sink is not None:
            self.sink.record(call)


def _impossible(usage: Usage | None) -> str | None:
    """What is wrong with token counts a server reported (negative, not whole numbers), or None."""
    if usage is None:
        return None
    for name in ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens"):
        value = getattr(usage, name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name} {value!r}"
    return None
