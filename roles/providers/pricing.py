"""Per-call cost from the editable price table (``pipeline/data/prices.yaml``, ``inference:``).

``COORD_PRICES`` may name another YAML file with the same layout. A model the table
does not list gets ``usd=None`` and a flag: coord never invents a price.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from coordinator.core.llm import Cost, Usage
from roles.providers.errors import ProviderConfigError

PACKAGED_PRICES = Path(__file__).resolve().parents[2] / "pipeline" / "data" / "prices.yaml"
_DATED = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens of one model."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


def prices_path() -> Path:
    """The table in use: ``COORD_PRICES`` or the packaged one."""
    return Path(os.environ.get("COORD_PRICES") or PACKAGED_PRICES)


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict[str, Price]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    table = data.get("inference") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise ProviderConfigError("missing 'inference' price table", file=path, path="inference")
    out: dict[str, Price] = {}
    for model, row in table.items():
        try:
            out[str(model)] = Price(**{k: float(v) for k, v in row.items()})
        except (TypeError, ValueError, AttributeError) as e:
            raise ProviderConfigError(f"bad price row: {e}", file=path, path=f"inference.{model}") from None
    return out


def load_inference_prices(path: Path | None = None) -> dict[str, Price]:
    """Model → price; re-read when the file changes."""
    p = path or prices_path()
    return _load(str(p), p.stat().st_mtime)


def price_for(model: str, table: dict[str, Price] | None = None) -> Price | None:
    """The model's price: exact name, its undated name, or ``ft:<base>`` for a fine-tuned model."""
    table = load_inference_prices() if table is None else table
    if model.startswith("ft:"):
        base = model.split(":")[1] if model.count(":") >= 1 else model
        return table.get(f"ft:{base}")
    return table.get(model) or table.get(_DATED.sub("", model))


def cost_of(model: str, usage: Usage, table: dict[str, Price] | None = None) -> Cost:
    """USD of a call, or unknown with a flag naming what is missing from the table."""
    price = price_for(model, table)
    where = prices_path().name
    if price is None:
        return Cost(None, f"no inference price for {model!r} in {where}")
    if usage.cached_tokens and price.cached_input is None:
        return Cost(None, f"no cached-input price for {model!r} in {where}")
    if usage.cache_write_tokens and price.cache_write is None:
        return Cost(None, f"no cache-write price for {model!r} in {where}")
    usd = (usage.input_tokens * price.input + usage.output_tokens * price.output
           + usage.cached_tokens * (price.cached_input or 0.0)
           + usage.cache_write_tokens * (price.cache_write or 0.0)) / 1_000_000
    return Cost(round(usd, 12))


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> Cost:
    """Cost of a planned call (no caching assumed)."""
    return cost_of(model, Usage(input_tokens=input_tokens, output_tokens=output_tokens))
