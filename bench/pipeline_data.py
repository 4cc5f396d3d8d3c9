"""Synthetic raw examples of the week2 shape, for the pipeline benchmarks.

Writes ``data/generated_examples/<agent>.jsonl`` in the raw-example format of
``docs/formats.md``: five agents, five categories each, difficulties in the 30/45/25
mix, answers of ~``words`` words drawn from a Zipf-weighted letter-only vocabulary (so
common words make shingles collide, as in real text). The variety the audit looks for
is planted at fixed rates: every 10th example calls a tool and every 25th runs code,
every 7th is multi-turn, every 50th carries an email and a phone number (and every row
carries PII look-alikes: version, date, price, order id), every 500th is a near
duplicate of the example before it (three words changed), every 200th answer is short
and every 300th has no end punctuation.

The real steps then turn this into the benchmark datasets:

- **cross-agent**: ``to_adp`` → ``build_sft`` with the default week2 matrix (all 25
  pairs), 3 prompt variants and no hold-out, so ``n`` base examples become ``15·n`` rows
  (6,665 → 99,975);
- **unique**: the same steps with an identity matrix (``IDENTITY_MATRIX``) and one
  variant, so every row is its own example (100,000 → 100,000 unique texts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

AGENTS = ("qa", "support", "legal", "analyst", "content")
CATEGORIES = ("triage", "explain", "review", "plan", "summarize")
SYLLABLES = ("ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po", "zu", "fe", "ga", "ri")
IDENTITY_MATRIX = "agents: [" + ", ".join(AGENTS) + "]\nweights: {}\n"
"""Compatibility YAML where every agent trains on its own examples only."""


def _difficulty(i: int) -> str:
    slot = i % 20  # 6 easy, 9 medium, 5 hard in every 20: the 30/45/25 target
    return "easy" if slot < 6 else "medium" if slot < 15 else "hard"


class _Words:
    """Zipf-weighted draws of pronounceable words, in large blocks (one numpy call per block)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        picks = self.rng.integers(0, len(SYLLABLES), size=(4000, 3))
        self.vocab = sorted({"".join(SYLLABLES[i] for i in row) for row in picks})
        ranks = np.arange(1, len(self.vocab) + 1, dtype=np.float64)
        self.p = (1 / ranks) / (1 / ranks).sum()
        self._block = np.zeros(0, dtype=np.int64)
        self._pos = 0

    def take(self, n: int) -> list[str]:
        if self._pos + n > len(self._block):
            self._block = self.rng.choice(len(self.vocab), size=max(1 << 20, n), p=self.p)
            self._pos = 0
        idx = self._block[self._pos:self._pos + n]
        self._pos += n
        vocab = self.vocab
        return [vocab[i] for i in idx.tolist()]


def _near_duplicate(turns: list[dict[str, object]]) -> list[dict[str, object]]:
    """The same conversation with three words of the final answer changed."""
    body = str(turns[-1]["content"]).split(" ")
    for j in (10, 150, 300):
        if j < len(body):
            body[j] = "changed"
    return [*turns[:-1], {**turns[-1], "content": " ".join(body)}]


def _turns(i: int, agent: str, words: _Words, n_words: int) -> tuple[list[dict[str, object]], str]:
    body = words.take(n_words)
    if i % 200 == 13:
        body = body[:8]
    end = "" if i % 300 == 17 else "."
    answer = " ".join(body) + end
    ask = f"Ticket {agent} {i}: release 2.14.1 shipped on 2024-03-15 for $1,299.00 " \
          f"(order ORD-2024-{i:07d}), please {' '.join(words.take(12))}?"
    if i % 50 == 0:
        ask += f" Mail user{i}@example.com or call +44 20 7946 {i % 10000:04d}."
    turns: list[dict[str, object]] = [{"role": "user", "content": ask}]
    kind = "chat"
    if i % 10 == 3:
        kind = "tool"
        turns += [{"role": "assistant", "content": "Let me look that up.",
                   "tool_call": {"id": "call_000001", "name": "search_docs",
                                 "arguments": {"query": " ".join(words.take(6)), "limit": 5}}},
                  {"role": "tool", "tool_call_id": "call_000001",
                   "content": " ".join(words.take(40)) + "."}]
    elif i % 25 == 4:
        kind = "code"
        turns += [{"role": "assistant", "content": "",
                   "code_call": {"id": "call_000001", "language": "Python",
                                 "code": f"print(len({' '.join(words.take(5))!r}))"}},
                  {"role": "tool", "tool_call_id": "call_000001", "content": "42"}]
    elif i % 7 == 5:
        turns += [{"role": "assistant", "content": " ".join(words.take(30)) + "."},
                  {"role": "user", "content": "And then " + " ".join(words.take(10)) + "?"}]
    turns.append({"role": "assistant", "content": answer})
    return turns, kind


def write_raw_examples(root: Path, per_agent: int, *, words: int = 350, seed: int = 7) -> int:
    """Write ``per_agent`` raw examples for each of :data:`AGENTS` under ``root``; return the bytes."""
    root.mkdir(parents=True, exist_ok=True)
    draw = _Words(seed)
    size = 0
    for agent in AGENTS:
        previous: tuple[list[dict[str, object]], str] = ([], "chat")
        path = root / f"{agent}.jsonl"
        with path.open("wb", buffering=1 << 20) as fh:
            for i in range(per_agent):
                if i % 500 == 7:  # a near duplicate of the example before
                    turns, kind = _near_duplicate(previous[0]), previous[1]
                else:
                    turns, kind = _turns(i, agent, draw, words)
                previous = (turns, kind)
                row = {"id": f"{agent}-{i:07d}", "agent": agent,
                       "category": CATEGORIES[i % len(CATEGORIES)], "difficulty": _difficulty(i),
                       "kind": kind, "system": f"You are the {agent} agent of the week2 team.",
                       "provider": "bench", "seed": seed, "turns": turns}
                fh.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        size += path.stat().st_size
    return size
