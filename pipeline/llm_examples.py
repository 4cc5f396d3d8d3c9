"""Generated examples written by a real LLM (Anthropic, OpenAI, OpenAI-compatible) for the generate step.

Each example is one structured-output call (:func:`roles.providers.complete_structured`)
whose answer must validate as :class:`GeneratedExample`: a user turn first, an assistant
answer last, tool results only right after the call they answer. Call ids are assigned
here (``call_<index><k>``), so rows have the same shape as the offline provider's. The
model is the step's ``model`` parameter, else ``COORD_GENERATE_MODEL``.

Before any call the step asks :meth:`LLMExampleSource.check_budget` to price the
examples not yet answered (``EST_INPUT_TOKENS`` / ``EST_OUTPUT_TOKENS`` per example from
the price table) against what is left of the budget. The generate step calls
:meth:`LLMExampleSource.draw` from several threads at once, so:

- every answer goes to the :class:`~pipeline.gen_cache.AnswerCache` the moment it
  arrives, keyed by :meth:`LLMExampleSource.key`; a cached answer is never asked for
  (nor paid for) again;
- before each paid call its worst case (prompt and ``max_tokens``) is reserved in the ledger
  as a pending row and checked against what is left; a call that does not fit waits for
  the calls under way to settle, and with none under way is refused (``BudgetExceeded``):
  calls already running finish and are recorded, and a kill mid-call leaves the pending row;
- ledger writes and budget checks go through one lock;
- a call told to wait (429 retry-after, overload, server error backoff) holds back new
  calls of the whole pool for as long, instead of every worker hitting the limit in turn.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, ValidationError, model_validator

from coordinator.core.errors import ParameterError, TaskError
from coordinator.core.llm import CallRecord, PendingCall, SpendGuard
from pipeline import offline_corpus as oc
from pipeline.example_sources import (
    ExampleSource,
    ExampleSpec,
    Kind,
    OfflineExampleSource,
    RawExample,
    Slots,
    Turn,
    call_id,
    fill,
)
from pipeline.gen_cache import AnswerCache, cache_file
from roles.providers import (
    LLMRequest,
    ProviderConfig,
    ProviderConfigError,
    ProviderError,
    RetryPolicy,
    complete_structured,
    make_provider,
)
from roles.providers.pricing import estimate_cost
from roles.providers.secrets import redact
from roles.providers.structured import schema_instructions

log = logging.getLogger(__name__)

MODEL_ENV = "COORD_GENERATE_MODEL"
EST_INPUT_TOKENS = 900
"""Prompt + schema instructions per example (measured on the week2 prompts, rounded up)."""
EST_OUTPUT_TOKENS = {"easy": 250, "medium": 400, "hard": 550}
"""Answer tokens by difficulty (the word targets of docs/formats.md × ~1.4 tokens/word, rounded up)."""


class GenToolCall(BaseModel):
    """A tool call the assistant makes."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    arguments: dict[str, Any] = Field(default_factory=dict)


class GenTurn(BaseModel):
    """One turn as the model writes it (ids are assigned by coord)."""

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_call: GenToolCall | None = None


class GeneratedExample(BaseModel):
    """The structure a model must return for one training example."""

    system: str = Field(min_length=10, description="The agent's system prompt.")
    turns: list[GenTurn] = Field(min_length=2)

    @model_validator(mode="after")
    def _shape(self) -> GeneratedExample:
        if self.turns[0].role != "user":
            raise ValueError("the first turn must be the user's")
        last = self.turns[-1]
        if last.role != "assistant" or last.tool_call is not None or not last.content.strip():
            raise ValueError("the last turn must be an assistant answer without a tool call")
        for prev, turn in zip(self.turns, self.turns[1:], strict=False):
            if turn.role == "tool" and (prev.role != "assistant" or prev.tool_call is None):
                raise ValueError("a tool turn must directly follow the assistant turn whose tool_call it answers")
            if prev.tool_call is not None and turn.role != "tool":
                raise ValueError("every tool_call must be followed by a tool turn with its result")
            if turn.tool_call is not None and turn.role != "assistant":
                raise ValueError("only assistant turns may carry a tool_call")
        return self


class _SerialSpend:
    """A spend guard shared by the generate workers: one ledger write or budget check at a time.

    A reservation is not serialized here: the run's budget makes check-and-store one step
    itself, and may wait in it for calls under way to settle.
    """

    def __init__(self, inner: SpendGuard) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    def record(self, call: CallRecord) -> None:
        """Store one call."""
        with self._lock:
            self.inner.record(call)

    def reserve(self, call: CallRecord, what: str) -> PendingCall:
        """Store a call about to be sent at its worst case (``BudgetExceeded`` when that does not fit)."""
        return _SerialPending(self._lock, self.inner.reserve(call, what))

    def check(self, estimate_usd: float | None, what: str) -> None:
        """Raise ``BudgetExceeded`` when ``estimate_usd`` does not fit what is left."""
        with self._lock:
            self.inner.check(estimate_usd, what)


class _SerialPending:
    """A generate call stored as pending; settled under the workers' shared lock."""

    def __init__(self, lock: threading.Lock, inner: PendingCall) -> None:
        self._lock = lock
        self.inner = inner

    def settle(self, call: CallRecord) -> None:
        """Replace the pending record with what the call used."""
        with self._lock:
            self.inner.settle(call)


class PoolPause:
    """Back-off shared by concurrent calls: when one is told to wait, new calls wait as long."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        """The retry policy's sleep: wait, and hold back new calls until this wait is over."""
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)
        time.sleep(seconds)

    def wait(self) -> None:
        """Block until no back-off is in force."""
        while (delay := self._until - time.monotonic()) > 0:
            time.sleep(delay)


_KIND_HINT = {
    "chat": "a conversation where the user asks for help and the assistant answers in prose",
    "code": "a request the assistant answers with working code in a fenced block and an explanation",
    "tool": "the assistant calls one tool (tool_call with name and arguments), gets its result in a tool "
            "turn (JSON text), then answers",
}


def scenario(spec: ExampleSpec) -> str:
    """A concrete situation for the example, drawn from the agent's topic pool by the spec alone.

    Without it every example of one category, difficulty and shape gets the same prompt
    and a model tends to answer it the same way (exact repeats cost paid redraws). The
    draw is seeded by ``(seed, agent, index)`` so a rerun asks the same question and the
    answer cache still hits.
    """
    rng = random.Random(f"scenario:{spec.seed}:{spec.agent}:{spec.index}")
    corpus = oc.corpus_for(spec.agent)
    slots = Slots(rng, corpus, spec.agent)
    topic = fill(rng.choice(corpus.categories[spec.category].topics), slots)
    return f"{topic}. {fill(rng.choice(corpus.details), slots)}" if corpus.details else topic


class LLMExampleSource:
    """Writes examples through an LLM provider; never plants defects (the model's own flaws are real ones)."""

    plants_traits = False

    def __init__(self, name: str, model: str | None, spend: SpendGuard | None,
                 cache_dir: Path | None = None) -> None:
        model = model or os.environ.get(MODEL_ENV)
        self.spend = _SerialSpend(spend) if spend is not None else None
        self.pause = PoolPause()
        config = ProviderConfig(name, model or "unset")  # type: ignore[arg-type]
        try:  # the key first: it is what a new user is most likely missing
            self.llm = make_provider(config, sink=self.spend, retry=RetryPolicy(sleep=self.pause.sleep))
        except ProviderConfigError as e:
            raise ParameterError(f"generate with provider {name!r}: {e.message}") from None
        if not model:
            raise ParameterError(f"provider {name!r} needs a model: pass model=… to generate or set {MODEL_ENV}")
        self.name = name
        self.model = model
        # a local server's answers depend on which server it is; hosted APIs are one model per name
        self.endpoint = config.resolved_base_url() if name == "openai_compatible" else None
        self.cache_dir = cache_dir
        self._caches: dict[str, AnswerCache] = {}
        self._cache_lock = threading.Lock()
        self._schema = schema_instructions(GeneratedExample)

    def estimate_usd(self, n_examples: int) -> float | None:
        """Cost of ``n_examples`` at the assumed mix (None when the model has no price)."""
        out = sum(EST_OUTPUT_TOKENS.values()) // len(EST_OUTPUT_TOKENS)
        cost = estimate_cost(self.model, EST_INPUT_TOKENS, out)
        return None if cost.usd is None else round(cost.usd * n_examples, 4)

    def check_budget(self, n_examples: int) -> None:
        """Refuse (``BudgetExceeded``) when the estimate does not fit what is left of the budget."""
        if self.spend is not None:
            self.spend.check(self.estimate_usd(n_examples),
                             f"generating {n_examples} examples with {self.name} {self.model}")

    def cache_for(self, agent: str) -> AnswerCache | None:
        """The answer cache of ``agent`` (None when the provider was made without a cache directory)."""
        if self.cache_dir is None:
            return None
        with self._cache_lock:
            if agent not in self._caches:
                self._caches[agent] = AnswerCache(cache_file(self.cache_dir, self.name, self.model, agent))
            return self._caches[agent]

    def uncached(self, specs: Iterable[ExampleSpec]) -> int:
        """How many of ``specs`` have no cached first answer (what a run would still pay for)."""
        return sum(1 for spec in specs if (c := self.cache_for(spec.agent)) is None or self.key(spec, 0) not in c)

    def _request(self, spec: ExampleSpec) -> LLMRequest:
        prompt = (f"Write one realistic training example for the {spec.agent!r} agent. Task category: "
                  f"{spec.category}. Scenario: {scenario(spec)}. Difficulty: {spec.difficulty}. Shape: "
                  f"{_KIND_HINT[spec.kind]}. The final answer should be 80-350 words, specific and correct. "
                  "Invent no real people's contact details.")
        return LLMRequest.of(prompt, max_tokens=2048, temperature=1.0)

    def key(self, spec: ExampleSpec, draw: int) -> str:
        """Cache key: provider, model, endpoint, the spec, the draw number and a digest of the request."""
        req = self._request(spec)
        parts = {"provider": self.name, "model": self.model, "endpoint": self.endpoint, "agent": spec.agent,
                 "index": spec.index, "seed": spec.seed, "category": spec.category,
                 "difficulty": spec.difficulty, "kind": spec.kind, "draw": draw,
                 "request": [[m.role, m.content] for m in req.messages], "max_tokens": req.max_tokens,
                 "temperature": req.temperature, "schema": self._schema}
        return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]

    def example(self, spec: ExampleSpec, rng: random.Random) -> RawExample:
        """Ask the model for one example matching ``spec`` (``rng`` is unused: the model is the randomness)."""
        return self.draw(spec, 0)

    def draw(self, spec: ExampleSpec, draw: int) -> RawExample:
        """Answer number ``draw`` for ``spec``: from the cache, else one paid call (safe from many threads)."""
        cache = self.cache_for(spec.agent)
        key = self.key(spec, draw)
        hit = cache.get(key) if cache is not None else None
        if cache is not None and hit is not None:
            try:
                return self._row(spec, GeneratedExample.model_validate(hit))
            except ValidationError as e:  # an edited cache file: pay again rather than fail the run
                log.warning("%s: cached answer for %s does not validate (%s); asking again", cache.path, spec.id,
                            str(e).splitlines()[0])
        self.pause.wait()
        try:  # each call is priced and reserved by the provider before it is sent (BudgetExceeded)
            ex, _ = complete_structured(self.llm, self._request(spec), GeneratedExample)
        except ProviderError as e:
            raise TaskError(f"example {spec.id}: {e}") from None
        ex = _masked(ex)
        if cache is not None:
            cache.put(key, ex.model_dump(mode="json", exclude_none=True), id=spec.id, draw=draw, model=self.model)
        return self._row(spec, ex)

    def _row(self, spec: ExampleSpec, ex: GeneratedExample) -> RawExample:
        turns: list[Turn] = []
        k = 0
        for t in ex.turns:
            if t.tool_call is not None:
                cid = call_id(spec.index, k)
                k += 1
                turns.append({"role": "assistant", "content": t.content,
                              "tool_call": {"id": cid, "name": t.tool_call.name, "arguments": t.tool_call.arguments}})
            elif t.role == "tool":
                turns.append({"role": "tool", "tool_call_id": call_id(spec.index, k - 1), "content": t.content})
            else:
                turns.append({"role": t.role, "content": t.content})
        kind: Kind = "tool" if k else ("code" if "```" in ex.turns[-1].content else "chat")
        return {"id": spec.id, "agent": spec.agent, "category": spec.category, "difficulty": spec.difficulty,
                "kind": kind, "system": ex.system, "provider": self.name, "seed": spec.seed, "turns": turns}


def _masked(ex: GeneratedExample) -> GeneratedExample:
    """The example with every configured secret the model may have echoed masked (it is cached and written)."""
    data = ex.model_dump(mode="json")
    masked = _redact_strings(data)
    return ex if masked == data else GeneratedExample.model_validate(masked)


def _redact_strings(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v) for v in value]
    return value


LLM_PROVIDERS = ("anthropic", "openai", "openai_compatible")


def example_source(name: str, *, model: str | None = None, spend: SpendGuard | None = None,
                 cache_dir: Path | None = None) -> ExampleSource:
    """The provider registered under ``name`` (LLM providers record calls to ``spend``, answers in ``cache_dir``)."""
    if name == "offline":
        return OfflineExampleSource()
    if name in LLM_PROVIDERS:
        return LLMExampleSource(name, model, spend, cache_dir)
    raise ParameterError(f"unknown provider {name!r}; known: 'offline', {', '.join(map(repr, LLM_PROVIDERS))}")
