"""Reading the benchmark's inputs: held-out items and the distinct rows of training files.

Both are Unsloth/ShareGPT rows (docs/formats.md). A row's prompt is its
conversation before the final ``gpt`` turn without the system prompt (which
names the target agent, not the task); its answer is that final turn. Bad
lines go to the rejects sink with the field at fault.

A valid row whose conversation ends on a tool call or a tool result (agent data
often does: OpenAI's own function-calling example ends on a call) has no answer
to ask for or to answer with. It is not a bad line: the readers skip it and count
it (``HeldoutSet.unanswered``, the second count of :func:`read_training`); a
skipped held-out row's base id still counts as held out when leaks are looked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from coordinator.core.errors import InputError
from coordinator.core.io import Rejects, iter_jsonl
from pipeline.responder import MemoryRow

_TURN_FROM = frozenset({"system", "human", "gpt", "function_call", "observation"})


class _BadRow(Exception):
    """A line that parsed as JSON but is not a usable row; carries the field at fault."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class HeldoutItem:
    """One benchmark question with its reference answer."""

    id: str
    base_id: str
    category: str | None
    prompt: str
    reference: str


def _identity(row: Any) -> tuple[str, int]:
    if not isinstance(row, dict):
        raise _BadRow(None, "line is not a JSON object")
    base_id, variant = row.get("base_id"), row.get("variant")
    if not isinstance(base_id, str) or not base_id:
        raise _BadRow("base_id", "must be a non-empty string")
    if not isinstance(variant, int) or isinstance(variant, bool):
        raise _BadRow("variant", "must be an integer")
    return base_id, variant


def _prompt_and_answer(row: dict[str, Any]) -> tuple[str, str] | None:
    """The row's prompt and final answer; None when it ends on something other than an answer."""
    conv = row.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise _BadRow("conversations", "must be a non-empty list of turns")
    for i, turn in enumerate(conv):
        if (not isinstance(turn, dict) or turn.get("from") not in _TURN_FROM
                or not isinstance(turn.get("value"), str)):
            raise _BadRow(f"conversations[{i}]", f"turn needs 'from' in {sorted(_TURN_FROM)} and a string 'value'")
    if conv[-1]["from"] in ("function_call", "observation"):
        return None
    if conv[-1]["from"] != "gpt":
        raise _BadRow(f"conversations[{len(conv) - 1}].from", "the last turn must be 'gpt'")
    prompt = "\n".join(t["value"] for t in conv[:-1] if t["from"] != "system")
    if not prompt.strip():
        raise _BadRow("conversations", "no prompt text before the final answer")
    return prompt, conv[-1]["value"]


def _reject(rejects: Rejects, source: str, line: int, row: Any, err: _BadRow) -> None:
    rejects.add(source=source, line=line, field=err.field, reason=err.reason,
                raw=orjson.dumps(row))


@dataclass(frozen=True)
class HeldoutSet:
    """The held-out rows of one file: the items to ask, and the base ids of rows without an answer."""

    items: list[HeldoutItem]
    unanswered: list[str]
    """Base ids of valid rows that end on a tool call or result (skipped, still held out)."""


def read_heldout(path: Path, source: str, rejects: Rejects) -> HeldoutSet:
    """Held-out items of one file (``source`` names it in rejects and errors); duplicates are rejected."""
    items: list[HeldoutItem] = []
    unanswered: list[str] = []
    seen: set[str] = set()
    for line, row in iter_jsonl(path, rejects):
        try:
            base_id, variant = _identity(row)
            asked = _prompt_and_answer(row)
            key = f"{base_id}#{variant}"
            if key in seen:
                raise _BadRow("base_id", f"duplicate held-out item {key!r}")
        except _BadRow as e:
            _reject(rejects, source, line, row, e)
            continue
        seen.add(key)
        if asked is None:
            unanswered.append(base_id)
            continue
        item_id = row.get("id") if isinstance(row.get("id"), str) else key
        category = row.get("category") if isinstance(row.get("category"), str) else None
        items.append(HeldoutItem(item_id, base_id, category, *asked))
    if not items:
        raise InputError("no usable held-out items" + (f" ({len(unanswered)} rows end without an answer)"
                                                        if unanswered else ""), path=source)
    return HeldoutSet(items, unanswered)


def read_training(path: Path, source: str, rejects: Rejects, heldout_ids: frozenset[str],
                  intern: dict[str, str] | None) -> tuple[list[MemoryRow], set[str], int]:
    """Scan one training file for held-out ids; with an ``intern`` table, also collect its distinct rows.

    Returns the memory rows, the held-out ids found and how many valid rows were skipped for
    ending without an answer.

    Without ``intern`` (a file of an agent not being benchmarked) only ``base_id`` is checked.

    Prompt variants differ only in the system prompt, which the match text
    leaves out, so rows are deduplicated on (base_id, prompt, answer): one
    memory row per distinct text, labelled with its lowest variant and
    carrying its highest weight. The same example recurs in every agent's
    file, so texts are interned to be held once.
    """
    leaked: set[str] = set()
    unanswered = 0
    memory: dict[tuple[str, str, str], tuple[int, float, str]] = {}
    for line, row in iter_jsonl(path, rejects):
        # a leak counts even when the rest of the row is unusable: a fine-tune may still read it
        claimed = row.get("base_id") if isinstance(row, dict) else None
        if isinstance(claimed, str) and claimed in heldout_ids:
            leaked.add(claimed)
        try:
            if intern is None:
                if not isinstance(claimed, str) or not claimed:
                    raise _BadRow("base_id", "must be a non-empty string")
                continue
            base_id, variant = _identity(row)
            weight, agent = row.get("weight"), row.get("source_agent")
            if (not isinstance(weight, int | float) or isinstance(weight, bool)
                    or not math.isfinite(weight) or weight <= 0):
                raise _BadRow("weight", "must be a positive number")
            if not isinstance(agent, str) or not agent:
                raise _BadRow("source_agent", "must be a non-empty string")
            asked = _prompt_and_answer(row)
        except _BadRow as e:
            _reject(rejects, source, line, row, e)
            continue
        if asked is None:
            unanswered += 1
            continue
        prompt, answer = asked
        text = (base_id, intern.setdefault(prompt, prompt), intern.setdefault(answer, answer))
        prev = memory.get(text)
        if prev is None:
            memory[text] = (variant, float(weight), agent)
        else:
            memory[text] = (min(prev[0], variant), max(prev[1], float(weight)), prev[2])
    rows = [MemoryRow(f"{b}#{v}", p, a, w, src) for (b, p, a), (v, w, src) in memory.items()]
    return rows, leaked, unanswered


