"""Vocabulary and templates of the offline example provider.

The offline provider is a labeled, deterministic stand-in for an LLM: it assembles
plausible domain text from these per-agent pools with seeded randomness. Templates
use ``{slot}`` placeholders (lowercase names); a slot is either a list in the data,
a dynamic value drawn by the provider (``version``, ``date``, ``ip``, ``price``,
``order``, ``pct``, ``count``, ``days``, ``hours``, ``first_name``), or ``topic``.
Code templates never contain ``{word}`` braces so they survive slot filling.

The text lives in ``pipeline/data/offline_corpus.json`` (package data, so it ships in
the wheel) and is read once, at import, through :mod:`importlib.resources`. This
module defines the record types, turns the JSON lists back into tuples and attaches
each tool's argument/result builders, which are code and therefore stay here in
``_TOOL_BUILDERS``, keyed by tool name.
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources as _resources

Slots = Mapping[str, str]


@dataclass(frozen=True)
class ToolTemplate:
    """One tool an agent can call in a ``tool`` example."""

    name: str
    """Function name as the model would call it."""
    thought: str
    """Short assistant text that accompanies the call (slot template)."""
    arguments: Callable[[Slots], dict[str, object]]
    """Builds the call's arguments from the example's slots."""
    result: Callable[[Slots], dict[str, object]]
    """Builds the tool's JSON result from the example's slots."""


@dataclass(frozen=True)
class CodeTemplate:
    """A fenced code answer or a code_call body."""

    language: str
    """Fence language tag and code_call language."""
    code: str
    """Source with optional ``{slot}`` placeholders."""
    output: str = "ok"
    """What running it prints (used when the code is executed through a code_call)."""


@dataclass(frozen=True)
class Category:
    """A task category: what users ask about and what answers tend to say."""

    topics: tuple[str, ...]
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class AgentCorpus:
    """Everything the offline provider needs to write one agent's examples."""

    system: str
    categories: dict[str, Category]
    asks: tuple[str, ...]
    details: tuple[str, ...]
    sentences: tuple[str, ...]
    steps: tuple[str, ...]
    followups: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    kind_weights: tuple[float, float, float]
    """Probabilities of chat, code and tool examples."""
    code_asks: tuple[str, ...]
    code: tuple[CodeTemplate, ...]
    tools: tuple[ToolTemplate, ...]
    greeting: tuple[str, ...] = field(default=())


_DATA_FILE = "data/offline_corpus.json"
"""Where the text lives, relative to the ``pipeline`` package."""

_Builder = Callable[[Slots], dict[str, object]]

_TOOL_BUILDERS: dict[str, tuple[_Builder, _Builder]] = {
    # qa
    "run_test_suite": (
        lambda s: {"suite": s["suite"], "branch": f"release/{s['version']}"},
        lambda s: {"passed": 200 + int(s["count"]) % 300, "failed": int(s["pct"]) % 7, "flaky": 1,
                   "duration_s": 60 + int(s["count"]) % 500},
    ),
    "search_issues": (
        lambda s: {"query": s["component"], "status": "open"},
        lambda s: {"total": int(s["pct"]) % 9 + 1, "oldest": s["date"], "labels": ["regression", "needs-repro"]},
    ),
    # support
    "lookup_order": (
        lambda s: {"order_id": s["order"]},
        lambda s: {"order_id": s["order"], "status": "in_transit", "carrier": "DHL", "last_scan": s["date"],
                   "total": s["price"]},
    ),
    "check_service_status": (
        lambda s: {"region": "eu-west", "service": "device-sync"},
        lambda s: {"status": "degraded", "incident_started": s["date"], "affected_pct": int(s["pct"])},
    ),
    # legal
    "search_clauses": (
        lambda s: {"contract": s["contract"], "clause_type": s["clause"]},
        lambda s: {"matches": 2, "sections": ["9.1", "9.3"], "last_amended": s["date"]},
    ),
    "get_regulation_summary": (
        lambda s: {"regulation": s["regulation"], "topic": "data transfers"},
        lambda s: {"regulation": s["regulation"], "articles": ["44", "46"], "updated": s["date"]},
    ),
    # analyst
    "run_sql": (
        lambda s: {"query": f"SELECT count(*) FROM {s['table']} WHERE created_at >= '{s['date']}'"},
        lambda s: {"rows": 1, "count": int(s["count"]) * 37, "elapsed_ms": 240 + int(s["pct"])},
    ),
    "get_metric": (
        lambda s: {"metric": s["metric"], "start": s["date"], "granularity": "week"},
        lambda s: {"metric": s["metric"], "points": 12, "latest": round(int(s["pct"]) * 1.7, 1),
                   "change_pct": -int(s["pct"]) % 9},
    ),
    # content
    "keyword_research": (
        lambda s: {"keyword": s["keyword"], "locale": "en-US"},
        lambda s: {"keyword": s["keyword"], "monthly_volume": int(s["count"]) * 11, "difficulty": int(s["pct"]) % 80},
    ),
    "style_check": (
        lambda s: {"document": "draft.md", "rules": "house-style"},
        lambda s: {"issues": int(s["pct"]) % 12, "passive_voice": 3, "long_sentences": 2},
    ),
    # generic
    "search_docs": (
        lambda s: {"query": s["subject"], "limit": 5},
        lambda s: {"results": 3, "most_recent": s["date"]},
    ),
}
"""``(arguments, result)`` builders of every tool named in the data file."""


def _fail(where: str, expected: str) -> ValueError:
    return ValueError(f"pipeline/{_DATA_FILE}: {where} must be {expected}")


def _obj(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _fail(where, "an object")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, "a string")
    return value


def _strs(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(where, "a list of strings")
    return tuple(value)


def _pairs(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise _fail(where, "a list of string pairs")
    pairs = []
    for i, item in enumerate(value):
        pair = _strs(item, f"{where}[{i}]")
        if len(pair) != 2:
            raise _fail(f"{where}[{i}]", "a pair of strings")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _items(value: object, where: str) -> list[dict[str, object]]:
    if not isinstance(value, list):
        raise _fail(where, "a list of objects")
    return [_obj(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _weights(value: object, where: str) -> tuple[float, float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(w, float) for w in value)
    ):
        raise _fail(where, "a list of three decimal numbers")
    chat, code, tool = value
    return chat, code, tool


def _category(value: object, where: str) -> Category:
    raw = _obj(value, where)
    return Category(
        _strs(raw.get("topics"), f"{where}.topics"),
        _strs(raw.get("sentences"), f"{where}.sentences"),
    )


def _tool(raw: dict[str, object], where: str) -> ToolTemplate:
    name = _str(raw.get("name"), f"{where}.name")
    if name not in _TOOL_BUILDERS:
        raise _fail(f"{where}.name", f"a tool with builders in pipeline/offline_corpus.py, not {name!r}")
    arguments, result = _TOOL_BUILDERS[name]
    return ToolTemplate(name, _str(raw.get("thought"), f"{where}.thought"), arguments, result)


def _corpus(value: object, where: str) -> AgentCorpus:
    raw = _obj(value, where)

    def strs(key: str) -> tuple[str, ...]:
        return _strs(raw.get(key), f"{where}.{key}")

    categories = {
        name: _category(cat, f"{where}.categories.{name}")
        for name, cat in _obj(raw.get("categories"), f"{where}.categories").items()
    }
    slots = {
        name: _strs(values, f"{where}.slots.{name}")
        for name, values in _obj(raw.get("slots"), f"{where}.slots").items()
    }
    code = tuple(
        CodeTemplate(
            _str(item.get("language"), f"{where}.code[{i}].language"),
            _str(item.get("code"), f"{where}.code[{i}].code"),
            _str(item.get("output"), f"{where}.code[{i}].output"),
        )
        for i, item in enumerate(_items(raw.get("code"), f"{where}.code"))
    )
    tools = tuple(
        _tool(item, f"{where}.tools[{i}]")
        for i, item in enumerate(_items(raw.get("tools"), f"{where}.tools"))
    )
    return AgentCorpus(
        system=_str(raw.get("system"), f"{where}.system"),
        categories=categories,
        asks=strs("asks"),
        details=strs("details"),
        sentences=strs("sentences"),
        steps=strs("steps"),
        followups=strs("followups"),
        slots=slots,
        kind_weights=_weights(raw.get("kind_weights"), f"{where}.kind_weights"),
        code_asks=strs("code_asks"),
        code=code,
        tools=tools,
        greeting=strs("greeting"),
    )


def _read() -> dict[str, object]:
    text = (_resources.files("pipeline") / _DATA_FILE).read_text(encoding="utf-8")
    return _obj(_json.loads(text), "the top level")


_RAW = _read()
_SHARED = _obj(_RAW.get("shared"), "shared")


def _shared(section: dict[str, object], key: str) -> tuple[str, ...]:
    return _strs(section.get(key), f"shared.{key}")


SHARED_SENTENCES: tuple[str, ...] = _shared(_SHARED, "shared_sentences")
OPENERS: tuple[str, ...] = _shared(_SHARED, "openers")
CLOSERS: tuple[str, ...] = _shared(_SHARED, "closers")
SHORT_ANSWERS: tuple[str, ...] = _shared(_SHARED, "short_answers")
FIRST_NAMES: tuple[str, ...] = _shared(_SHARED, "first_names")
LAST_NAMES: tuple[str, ...] = _shared(_SHARED, "last_names")
EMAIL_DOMAINS: tuple[str, ...] = _shared(_SHARED, "email_domains")
PII_USER_SENTENCES: tuple[str, ...] = _shared(_SHARED, "pii_user_sentences")
PII_ANSWER_SENTENCES: tuple[str, ...] = _shared(_SHARED, "pii_answer_sentences")
NEAR_DUP_PREFIXES: tuple[str, ...] = _shared(_SHARED, "near_dup_prefixes")
NEAR_DUP_SWAPS: tuple[tuple[str, str], ...] = _pairs(_SHARED.get("near_dup_swaps"), "shared.near_dup_swaps")

AGENTS: dict[str, AgentCorpus] = {
    name: _corpus(raw, f"agents.{name}") for name, raw in _obj(_RAW.get("agents"), "agents").items()
}
GENERIC: AgentCorpus = _corpus(_RAW.get("generic"), "generic")

_unused = sorted(set(_TOOL_BUILDERS) - {t.name for c in (*AGENTS.values(), GENERIC) for t in c.tools})
if _unused:
    raise ValueError(f"pipeline/{_DATA_FILE}: no tool uses the builders of {', '.join(_unused)}")
del _RAW, _SHARED, _unused


def corpus_for(agent: str) -> AgentCorpus:
    """The corpus of a known agent, or the generic one for any other name."""
    return AGENTS.get(agent, GENERIC)
