"""What a step parameter accepts beyond its type: ranges, shares, sizes, names; checked when a plan loads."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Limit:
    """What a step accepts for one parameter beyond its type; checked when a plan loads.

    Bounds apply to a number, or to every number in a list or mapping (nested ones too):
    ``ge``/``le`` inclusive, ``gt``/``lt`` exclusive. ``total``: the numbers of a list or mapping
    add up to it (shares). ``keys``: the keys a mapping may have. ``size``/``min_size``: a
    list's length, exact or least. ``ascending``: a list's numbers never decrease. ``unique``:
    no item twice. ``choices``/``pattern``: what a string (or every string in a list) may be;
    ``choices_from``: another parameter of the step whose strings are allowed too (a step's
    built-in names plus the ones a plan adds on purpose, so a typo is not taken for a new name).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    total: float | None = None
    keys: tuple[str, ...] | None = None
    size: int | None = None
    min_size: int | None = None
    ascending: bool = False
    unique: bool = False
    choices: tuple[str, ...] | None = None
    choices_from: str | None = None
    pattern: str | None = None

    @classmethod
    def of(cls, spec: tuple[float | None, float | None] | Mapping[str, Any] | Limit) -> Limit:
        """A limit from its declaration: an inclusive ``(low, high)`` pair or keyword fields."""
        if isinstance(spec, Limit):
            return spec
        if isinstance(spec, tuple):
            low, high = spec
            return cls(ge=low, le=high)
        unknown = set(spec) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown limit fields {sorted(unknown)}")
        given: dict[str, Any] = {k: tuple(v) if k in ("keys", "choices") else v for k, v in spec.items()}
        return cls(**given)

    def bounds(self) -> str:
        """The bounds in words: ``from 1 to 64``, ``at least 1``, ``in (0, 1]``."""
        low, opening = (self.ge, "[") if self.ge is not None else (self.gt, "(")
        high, closing = (self.le, "]") if self.le is not None else (self.lt, ")")
        if low is not None and high is not None:
            if self.ge is not None and self.le is not None:
                return f"from {low:g} to {high:g}"
            return f"in {opening}{low:g}, {high:g}{closing}"
        if low is not None:
            return f"at least {low:g}" if self.ge is not None else f"greater than {low:g}"
        if high is not None:
            return f"at most {high:g}" if self.le is not None else f"less than {high:g}"
        return "any number"

    def problem(self, name: str, value: Any, params: Mapping[str, Any] | None = None) -> str | None:
        """Why ``value`` breaks this limit (``name`` is the parameter; ``params``: every parameter of the
        call, for ``choices_from``), or None."""
        if isinstance(value, Mapping) and self.keys is not None:
            unknown = [k for k in value if k not in self.keys]
            if unknown:
                return f"{name} has unknown keys {unknown} (allowed: {', '.join(self.keys)})"
        if isinstance(value, list):
            if self.size is not None and len(value) != self.size:
                return f"{name} must have {self.size} items, got {value!r}"
            if self.min_size is not None and len(value) < self.min_size:
                return f"{name} must have at least {self.min_size} item(s), got {value!r}"
            twice = sorted({repr(v) for i, v in enumerate(value) if v in value[:i]})
            if self.unique and twice:
                return f"{name} lists {', '.join(twice)} more than once"
        leaves = _leaves(name, value)
        numbers = [(where, v) for where, v in leaves
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        allowed = self._allowed(params)
        for where, v in leaves:
            if isinstance(v, str) and allowed is not None and v not in allowed:
                also = f" (or be listed in {self.choices_from})" if self.choices_from else ""
                return f"{where} must be one of {', '.join(self.choices or ())}{also}, got {v!r}"
            if isinstance(v, str) and self.pattern is not None and not re.fullmatch(self.pattern, v):
                return f"{where} must match {self.pattern}, got {v!r}"
        for where, v in numbers:
            if not self._within(v):
                return f"{where} must be {self.bounds()}, got {v!r}"
        if self.ascending and any(b < a for (_, a), (_, b) in itertools.pairwise(numbers)):
            return f"{name} must be in ascending order, got {value!r}"
        total = sum(v for _, v in numbers)
        if self.total is not None and isinstance(value, list | Mapping) \
                and not math.isclose(total, self.total, abs_tol=1e-6):
            return f"{name} must add up to {self.total:g}, got {total:g}"
        return None

    def _allowed(self, params: Mapping[str, Any] | None) -> tuple[str, ...] | None:
        """The strings ``choices`` and ``choices_from`` allow (None: any)."""
        if self.choices is None:
            return None
        more = (params or {}).get(self.choices_from) if self.choices_from else None
        return (*self.choices, *(m for m in more if isinstance(m, str))) if isinstance(more, list) else self.choices

    def _within(self, x: float) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))


def _leaves(where: str, value: Any) -> list[tuple[str, Any]]:
    """Every scalar in ``value`` with its place (``target['easy']``, ``agents[2]``)."""
    if isinstance(value, Mapping):
        return [leaf for k, v in value.items() for leaf in _leaves(f"{where}[{k!r}]", v)]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(f"{where}[{i}]", v)]
    return [(where, value)]


LimitSpec = tuple[float | None, float | None] | Mapping[str, Any] | Limit
"""How a step declares a limit: an inclusive ``(low, high)`` pair (None: unbounded) or :class:`Limit` fields."""
