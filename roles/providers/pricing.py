"""Per-call cost: a local price table over the prices maintained by genai-prices.

A model is priced, in this order, from

1. the local table: ``inference:`` of ``pipeline/data/prices.yaml``, or of the file named by
   ``COORD_PRICES`` — an override, for what the library lacks or prices differently;
2. the data bundled with the installed ``genai-prices`` package, for the hosted providers coord
   calls (Anthropic, OpenAI). It is never updated over the network while coord runs;
3. nothing: the cost is unknown (``usd=None``) with a flag naming what is missing. coord never
   invents a price.

A price may have tiers: when a request's prompt — uncached input, cache reads and cache writes
together — is longer than a tier's threshold, every token of that request is billed at the
tier's rates (Anthropic's long-context pricing; genai-prices applies its tiers the same way).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from coordinator.core.llm import Cost, LLMRequest, Usage
from roles.providers.errors import ProviderConfigError

if TYPE_CHECKING:
    from decimal import Decimal

    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelPrice, TieredPrices

PACKAGED_PRICES = Path(__file__).resolve().parents[2] / "pipeline" / "data" / "prices.yaml"
LIBRARY_PROVIDERS = frozenset({"anthropic", "openai"})
"""Providers whose models the library prices. Asked for another provider (``openai_compatible``),
or for a model whose name the library gives to another vendor (``deepseek-r1:8b`` on Ollama),
only the local table prices it: a local model is not billed at a hosted model's rates."""
_DATED = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")
_RATES = ("input", "output", "cached_input", "cache_write")


@dataclass(frozen=True)
class Tier:
    """The rates of a whole request whose prompt exceeds ``above_input_tokens`` (USD per 1M tokens)."""

    above_input_tokens: int
    """Prompt tokens (uncached input + cache reads + cache writes) a request must exceed."""
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens of one model."""

    input: float
    """Uncached input tokens."""
    output: float
    cached_input: float | None = None
    """Prompt-cache reads; None when unknown."""
    cache_write: float | None = None
    """Prompt-cache writes; None when unknown."""
    tiers: tuple[Tier, ...] = ()
    """Long-prompt rates, ascending by threshold."""

    def for_prompt(self, prompt_tokens: int) -> Price | Tier:
        """The rates of a request with ``prompt_tokens`` of prompt: the highest tier it exceeds."""
        for tier in reversed(self.tiers):
            if prompt_tokens > tier.above_input_tokens:
                return tier
        return self


def prices_path() -> Path:
    """The local table in use: ``COORD_PRICES`` or the packaged one."""
    return Path(os.environ.get("COORD_PRICES") or PACKAGED_PRICES)


def _table_name() -> str:
    named = os.environ.get("COORD_PRICES")
    return named or "pipeline/data/prices.yaml"


def _usd(value: Any, file: str, where: str) -> float:
    try:
        usd = float(value)
    except (TypeError, ValueError):
        usd = math.nan
    if isinstance(value, bool) or not math.isfinite(usd) or usd < 0:
        raise ProviderConfigError(f"bad price {value!r}: USD per 1M tokens, a number >= 0",
                                  file=file, path=where)
    return usd


def _rates(row: Any, file: str, where: str, extra: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ProviderConfigError("a price row is a mapping such as {input: 3.0, output: 15.0}",
                                  file=file, path=where)
    unknown = sorted(str(k) for k in row if k not in (*_RATES, extra))
    if unknown:
        raise ProviderConfigError(f"unknown key {unknown[0]!r}; known: {', '.join((*_RATES, extra))}",
                                  file=file, path=where)
    for needed in ("input", "output"):
        if needed not in row:
            raise ProviderConfigError(f"missing {needed!r}", file=file, path=where)
    return {k: _usd(v, file, f"{where}.{k}") for k, v in row.items() if k in _RATES}


def _row(model: str, row: Any, file: str) -> Price:
    where = f"inference.{model}"
    rates = _rates(row, file, where, "tiers")
    raw_tiers = row.get("tiers") or []
    if not isinstance(raw_tiers, list):
        raise ProviderConfigError("tiers is a list of {above_input_tokens: N, input: …, output: …}",
                                  file=file, path=f"{where}.tiers")
    tiers: list[Tier] = []
    for i, raw in enumerate(raw_tiers):
        at = f"{where}.tiers[{i}]"
        tier_rates = _rates(raw, file, at, "above_input_tokens")
        above = raw.get("above_input_tokens")
        if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
            raise ProviderConfigError("above_input_tokens must be a whole number of tokens > 0",
                                      file=file, path=f"{at}.above_input_tokens")
        tiers.append(Tier(above, **tier_rates))
    thresholds = [t.above_input_tokens for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        raise ProviderConfigError("two tiers have the same above_input_tokens", file=file, path=f"{where}.tiers")
    return Price(**rates, tiers=tuple(sorted(tiers, key=lambda t: t.above_input_tokens)))


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict[str, Price]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or "inference" not in data:
        raise ProviderConfigError("missing 'inference' price table", file=path, path="inference")
    table = data["inference"] or {}
    if not isinstance(table, dict):
        raise ProviderConfigError("'inference' maps model names to prices", file=path, path="inference")
    return {str(model): _row(str(model), row, path) for model, row in table.items()}


def load_inference_prices(path: Path | None = None) -> dict[str, Price]:
    """The local table, model → price; re-read when the file changes."""
    p = path or prices_path()
    return _load(str(p), p.stat().st_mtime)


def _local(model: str, table: dict[str, Price]) -> Price | None:
    if model.startswith("ft:"):
        return table.get(f"ft:{model.split(':')[1]}")
    return table.get(model) or table.get(_DATED.sub("", model))


@lru_cache(maxsize=1)
def _bundled() -> DataSnapshot:
    # imported on first use: the bundled table is a large module that only paid calls need.
    # A snapshot of coord's own rather than genai-prices' global one, which UpdatePrices (if any
    # library in the process starts it) replaces with prices fetched over the network.
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


@lru_cache(maxsize=1)
def library_version() -> str:
    """Which price library and data coord prices from when the local table does not list a model."""
    return f"genai-prices {version('genai-prices')} (bundled data)"


def _from_library(mp: ModelPrice) -> Price | None:
    from genai_prices.types import TieredPrices  # loaded already by _bundled

    rates = {"input": mp.input_mtok, "output": mp.output_mtok,
             "cached_input": mp.cache_read_mtok, "cache_write": mp.cache_write_mtok}
    if rates["input"] is None or rates["output"] is None:
        return None  # not billed by the token (speech, images, …)

    def rate(price: Decimal | TieredPrices | None, prompt_tokens: int) -> float | None:
        """The rate of a request whose prompt is just longer than ``prompt_tokens``."""
        if not isinstance(price, TieredPrices):
            return None if price is None else float(price)
        reached = [t.price for t in price.tiers if t.start <= prompt_tokens]  # tiers are sorted
        return float(reached[-1] if reached else price.base)

    def at(prompt_tokens: int) -> dict[str, Any]:
        return {k: rate(v, prompt_tokens) for k, v in rates.items()}

    starts = sorted({t.start for v in rates.values() if isinstance(v, TieredPrices) for t in v.tiers})
    return Price(**at(-1), tiers=tuple(Tier(start, **at(start)) for start in starts))  # -1: under every tier


@lru_cache(maxsize=512)
def _library_price(model: str, provider: str | None, day: date) -> Price | None:
    """The library's price of ``model`` on ``day`` (the library dates its price changes)."""
    snapshot = _bundled()
    if provider is None:
        if model.startswith("ft:"):
            provider = "openai"
        else:
            try:
                provider = snapshot.find_provider(model.lower(), None, None).id
            except LookupError:
                return None
    if provider not in LIBRARY_PROVIDERS:
        return None
    for ref in dict.fromkeys((model, _DATED.sub("", model))):
        try:
            _, info = snapshot.find_provider_model(ref, None, provider, None)
        except LookupError:
            continue
        return _from_library(info.get_prices(datetime.combine(day, time(), UTC)))
    return None


def _resolve(model: str, table: dict[str, Price] | None, provider: str | None) -> tuple[Price, str] | None:
    local = _local(model, load_inference_prices() if table is None else table)
    if local is not None:
        return local, _table_name() if table is None else "the given price table"
    found = _library_price(model, provider, datetime.now(UTC).date())
    return None if found is None else (found, library_version())


def price_for(model: str, table: dict[str, Price] | None = None, *, provider: str | None = None) -> Price | None:
    """The model's price: the local table (exact name, undated name, ``ft:<base>``), then the library.

    ``table`` replaces the local file; ``provider`` (coord's name for it) picks the library's
    provider, otherwise found from the model's name.
    """
    found = _resolve(model, table, provider)
    return None if found is None else found[0]


def price_source(model: str, table: dict[str, Price] | None = None, *,
                 provider: str | None = None) -> str | None:
    """Where the model's price comes from (the local table or the library and its version); None if unknown."""
    found = _resolve(model, table, provider)
    return None if found is None else found[1]


def cost_of(model: str, usage: Usage, table: dict[str, Price] | None = None, *,
            provider: str | None = None) -> Cost:
    """USD of a call, or unknown with a flag naming what is missing."""
    price = price_for(model, table, provider=provider)
    if price is None:
        where = _table_name() if table is None else "the given price table"
        if provider is None or provider in LIBRARY_PROVIDERS:
            where += " or genai-prices"
        return Cost(None, f"no inference price for {model!r} in {where}")
    rates = price.for_prompt(usage.input_tokens + usage.cached_tokens + usage.cache_write_tokens)
    tier = f" above {rates.above_input_tokens} input tokens" if isinstance(rates, Tier) else ""
    if usage.cached_tokens and rates.cached_input is None:
        return Cost(None, f"no cached-input price for {model!r}{tier} in "
                          f"{price_source(model, table, provider=provider)}")
    if usage.cache_write_tokens and rates.cache_write is None:
        return Cost(None, f"no cache-write price for {model!r}{tier} in "
                          f"{price_source(model, table, provider=provider)}")
    usd = (usage.input_tokens * rates.input + usage.output_tokens * rates.output
           + usage.cached_tokens * (rates.cached_input or 0.0)
           + usage.cache_write_tokens * (rates.cache_write or 0.0)) / 1_000_000
    return Cost(round(usd, 12))


def estimate_cost(model: str, input_tokens: int, output_tokens: int, *, provider: str | None = None) -> Cost:
    """Cost of a planned call (no caching assumed; a long prompt is priced at its tier)."""
    return cost_of(model, Usage(input_tokens=input_tokens, output_tokens=output_tokens), provider=provider)


BYTES_PER_TOKEN_AT_LEAST = 3
"""A prompt's tokens are bounded by its UTF-8 bytes / 3: English runs ~4 bytes a token, code and JSON
~3, and a CJK character (3 bytes) is about one token."""
MESSAGE_OVERHEAD_TOKENS = 16
"""Role markers and framing a provider adds per message."""


def prompt_tokens_bound(request: LLMRequest) -> int:
    """An upper estimate of the input tokens ``request`` bills (system, turns, JSON schema)."""
    parts = [request.system or "", *(m.content for m in request.messages)]
    if request.json_schema is not None:
        parts.append(json.dumps(request.json_schema, separators=(",", ":")))
    size = sum(len(p.encode("utf-8")) for p in parts)
    return -(-size // BYTES_PER_TOKEN_AT_LEAST) + MESSAGE_OVERHEAD_TOKENS * (len(request.messages) + 1)


def worst_case_cost(model: str, request: LLMRequest, *, provider: str | None = None) -> Cost:
    """The most ``request`` can cost: its prompt's upper estimate at the full input rate (no cache
    discount) and ``max_tokens`` of output; unknown (``usd=None``) when the model has no price."""
    return estimate_cost(model, prompt_tokens_bound(request), request.max_tokens, provider=provider)
