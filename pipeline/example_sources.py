"""Example sources: who writes one raw example from a spec (an LLM provider is one kind of source).

``OfflineExampleSource`` is a labeled, deterministic stand-in for an LLM: it assembles
text from the per-agent pools in :mod:`pipeline.offline_corpus` with the caller's
seeded ``random.Random`` and marks every row ``"provider": "offline"``. It also
honours *traits* (PII, too-short answer, missing end punctuation) that the generate
step plants at documented rates so the audit has something real to find.

``anthropic``, ``openai`` and ``openai_compatible`` go through the LLM provider layer
(:mod:`roles.providers`, see :mod:`pipeline.llm_examples`): each example is one
structured-output call, validated against the raw-example format, retried once with the
validation error, recorded in the cost ledger; the step estimates the whole run's cost
first and refuses to start past the budget. They are :class:`PaidExampleSource` s: the
step calls them concurrently and every answer is cached so it is paid for once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NotRequired, Protocol, TypedDict, runtime_checkable

import orjson

from pipeline import offline_corpus as oc

if TYPE_CHECKING:
    pass

Difficulty = Literal["easy", "medium", "hard"]
Kind = Literal["chat", "code", "tool"]
Trait = Literal["pii", "too_short", "no_end_punct"]

DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
KINDS: tuple[Kind, ...] = ("chat", "code", "tool")

WORD_TARGETS: dict[Difficulty, tuple[int, int]] = {"easy": (80, 150), "medium": (140, 250), "hard": (220, 320)}
"""Word range of a final answer by difficulty (answers stay within ~80–350 words)."""
MULTI_TURN_RATE: dict[Difficulty, float] = {"easy": 0.15, "medium": 0.25, "hard": 0.35}
"""Chance that a chat example has a follow-up user turn."""
CODE_CALL_RATE = 0.4
"""Share of code examples (in runnable languages) that execute through a code_call."""
PII_IN_USER_RATE = 0.7
"""Share of PII-seeded examples where the contact detail sits in the user turn."""


class ToolCall(TypedDict):
    id: str
    name: str
    arguments: dict[str, object]


class CodeCall(TypedDict):
    id: str
    language: str
    code: str


class Turn(TypedDict):
    """One turn of a raw example (see docs/formats.md)."""

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_call: NotRequired[ToolCall]
    code_call: NotRequired[CodeCall]
    tool_call_id: NotRequired[str]


class RawExample(TypedDict):
    """One row of ``data/generated_examples/<agent>.jsonl``."""

    id: str
    agent: str
    category: str
    difficulty: Difficulty
    kind: Kind
    system: str
    provider: str
    seed: int
    turns: list[Turn]


@dataclass(frozen=True)
class ExampleSpec:
    """What the generate step asks a provider for."""

    agent: str
    category: str
    difficulty: Difficulty
    kind: Kind
    index: int
    """Position in the agent's file; makes the id and the call ids."""
    seed: int
    """The user-facing seed, recorded on the row."""
    traits: frozenset[Trait] = field(default_factory=frozenset)
    """Defects to plant (offline provider only)."""

    @property
    def id(self) -> str:
        """Row id, e.g. ``qa-00017``."""
        return f"{self.agent}-{self.index:05d}"


def call_id(index: int, k: int) -> str:
    """Id of the k-th call (k < 10) of example ``index``: unique within a file."""
    return f"call_{index:05d}{k}"


class ExampleSource(Protocol):
    """Writes one raw example for a spec, drawing all randomness from ``rng``."""

    name: str
    plants_traits: bool
    """True when the provider can plant seeded defects (PII, short answers…)."""

    def example(self, spec: ExampleSpec, rng: random.Random) -> RawExample:
        """Produce the example described by ``spec``."""
        ...


@runtime_checkable
class PaidExampleSource(ExampleSource, Protocol):
    """A provider whose every example is a paid call: drawn concurrently, cached, checked against the budget."""

    def draw(self, spec: ExampleSpec, draw: int) -> RawExample:
        """Answer number ``draw`` (0, then redraws) for ``spec``; safe to call from many threads."""
        ...

    def uncached(self, specs: Iterable[ExampleSpec]) -> int:
        """How many of ``specs`` would need a paid call."""
        ...

    def check_budget(self, n_examples: int) -> None:
        """Refuse to start when ``n_examples`` calls do not fit the budget."""
        ...


_SLOT = re.compile(r"\{([a-z_]+)\}")
DECOY_SLOTS = frozenset({"version", "date", "ip", "price", "order"})


class Slots(dict[str, str]):
    """Slot values drawn lazily and then fixed for one example, so its text stays consistent."""

    def __init__(self, rng: random.Random, corpus: oc.AgentCorpus, agent: str) -> None:
        super().__init__(agent=agent)
        self.rng = rng
        self.corpus = corpus

    def __missing__(self, key: str) -> str:
        value = self._draw(key)
        self[key] = value
        return value

    def _draw(self, key: str) -> str:
        r = self.rng
        dynamic: dict[str, Callable[[], str]] = {
            "version": lambda: f"{r.randint(1, 4)}.{r.randint(0, 24)}.{r.randint(0, 12)}",
            "date": lambda: f"{r.choice((2023, 2024, 2025))}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            "ip": lambda: r.choice((f"192.168.{r.randint(0, 255)}.{r.randint(1, 254)}",
                                    f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}")),
            "price": lambda: f"${r.randint(9, 4999):,}.{r.choice(('00', '49', '99'))}",
            "order": lambda: f"ORD-{r.choice((2023, 2024, 2025))}-{r.randint(1, 999999):06d}",
            "pct": lambda: str(r.randint(2, 38)),
            "count": lambda: str(r.randint(40, 5000)),
            "days": lambda: str(r.randint(2, 30)),
            "hours": lambda: str(r.randint(2, 48)),
            "first_name": lambda: r.choice(oc.FIRST_NAMES).title(),
            "email": lambda: f"{r.choice(oc.FIRST_NAMES)}.{r.choice(oc.LAST_NAMES)}@{r.choice(oc.EMAIL_DOMAINS)}",
            "phone": lambda: _phone(r),
        }
        if key in dynamic:
            return dynamic[key]()
        pool = self.corpus.slots.get(key)
        if pool is None:
            raise KeyError(f"offline corpus has no slot {key!r}")
        return r.choice(pool)


def _phone(r: random.Random) -> str:
    """An international phone number in one of several national formats (fictional ranges)."""
    d = r.randint
    return r.choice((
        f"+44 20 7946 0{d(100, 999)}",
        f"+1 (415) 555-0{d(100, 199)}",
        f"+49 30 {d(1000000, 9999999)}",
        f"+33 1 {d(10, 99)} {d(10, 99)} {d(10, 99)} {d(10, 99)}",
        f"+81 3-{d(1000, 9999)}-{d(1000, 9999)}",
        f"+61 2 {d(1000, 9999)} {d(1000, 9999)}",
    ))


def fill(template: str, slots: dict[str, str]) -> str:
    """Substitute ``{slot}`` placeholders; capitalize when a slot opens the sentence."""
    text = _SLOT.sub(lambda m: slots[m.group(1)], template)
    if template.startswith("{") and text[:1].islower():
        text = text[0].upper() + text[1:]
    return text


def _words(text: str) -> int:
    return len(text.split())


class OfflineExampleSource:
    """Deterministic offline stand-in for an LLM provider (see module docstring)."""

    name = "offline"
    plants_traits = True

    def example(self, spec: ExampleSpec, rng: random.Random) -> RawExample:
        """Assemble one example from the agent's corpus with ``rng``."""
        corpus = oc.corpus_for(spec.agent)
        slots = Slots(rng, corpus, spec.agent)
        slots["topic"] = fill(rng.choice(corpus.categories[spec.category].topics), slots)
        pool = list(corpus.categories[spec.category].sentences + corpus.sentences + oc.SHARED_SENTENCES)
        rng.shuffle(pool)
        pii_in_user = "pii" in spec.traits and rng.random() < PII_IN_USER_RATE
        pii_in_answer = "pii" in spec.traits and not pii_in_user

        turns: list[Turn] = [{"role": "user", "content": self._prompt(corpus, spec, slots, rng, pii_in_user)}]
        lo, hi = WORD_TARGETS[spec.difficulty]
        code_block = None
        if spec.kind == "tool":
            turns += self._tool_turns(corpus, spec, slots, rng)
        elif spec.kind == "code":
            code_turns, code_block = self._code_turns(corpus, spec, slots, rng)
            turns += code_turns
        elif rng.random() < MULTI_TURN_RATE[spec.difficulty]:
            first = self._answer(corpus, slots, rng, pool, rng.randint(80, 140))
            turns += [{"role": "assistant", "content": first},
                      {"role": "user", "content": fill(rng.choice(corpus.followups), slots)}]
        final = self._answer(corpus, slots, rng, pool, rng.randint(lo, hi), pii=pii_in_answer,
                             lead=self._lead(turns), middle=code_block)
        if "too_short" in spec.traits:
            final = fill(rng.choice(oc.SHORT_ANSWERS), slots)
        if "no_end_punct" in spec.traits:
            final = final.rstrip(".!?")
        turns.append({"role": "assistant", "content": final})
        return {"id": spec.id, "agent": spec.agent, "category": spec.category, "difficulty": spec.difficulty,
                "kind": spec.kind, "system": fill(corpus.system, slots), "provider": self.name,
                "seed": spec.seed, "turns": turns}

    def _prompt(self, corpus: oc.AgentCorpus, spec: ExampleSpec, slots: Slots, rng: random.Random,
                pii: bool) -> str:
        asks = corpus.code_asks if spec.kind == "code" else corpus.asks
        n_details = {"easy": 1, "medium": rng.randint(1, 2), "hard": rng.randint(2, 3)}[spec.difficulty]
        parts = [fill(rng.choice(asks), slots)]
        parts += [fill(d, slots) for d in rng.sample(corpus.details, min(n_details, len(corpus.details)))]
        if pii:
            parts.append(fill(rng.choice(oc.PII_USER_SENTENCES), slots))
        return " ".join(parts)

    def _answer(self, corpus: oc.AgentCorpus, slots: Slots, rng: random.Random, pool: list[str],
                target: int, *, pii: bool = False, lead: str | None = None,
                middle: str | None = None) -> str:
        """Opener, paragraphs of body sentences, maybe a numbered list, closer: about ``target`` words."""
        head = [fill(rng.choice(corpus.greeting), slots)] if corpus.greeting else []
        head.append(fill(rng.choice(oc.OPENERS), slots))
        if lead:
            head.append(lead)
        closer = fill(rng.choice(oc.CLOSERS), slots)
        blocks = [" ".join(head)]
        if middle:
            blocks.append(middle)
        used = sum(_words(b) for b in blocks) + _words(closer)
        if target >= 140 and rng.random() < 0.6:
            items = [fill(s, slots) for s in rng.sample(corpus.steps, rng.randint(3, min(5, len(corpus.steps))))]
            steps = "Steps:\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(items, 1))
            used += _words(steps)
        else:
            steps = ""
        paragraph: list[str] = []
        while used < target and pool:
            sentence = fill(pool.pop(), slots)
            paragraph.append(sentence)
            used += _words(sentence)
            if len(paragraph) == 4:
                blocks.append(" ".join(paragraph))
                paragraph = []
        if paragraph:
            blocks.append(" ".join(paragraph))
        if steps:
            blocks.insert(min(2, len(blocks)), steps)
        if pii:
            blocks.append(fill(rng.choice(oc.PII_ANSWER_SENTENCES), slots))
        blocks.append(closer)
        return "\n\n".join(blocks)

    @staticmethod
    def _lead(turns: list[Turn]) -> str | None:
        """A sentence tying the final answer to a preceding tool or code result."""
        last = turns[-1]
        if last["role"] != "tool":
            return None
        if turns[-2].get("code_call"):
            return "The run finished cleanly, and the output above is what we expected."
        call = turns[-2].get("tool_call")
        assert call is not None
        facts = orjson.loads(last["content"])
        shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in list(facts.items())[:3])
        return f"The {call['name'].replace('_', ' ')} result shows {shown}."

    def _tool_turns(self, corpus: oc.AgentCorpus, spec: ExampleSpec, slots: Slots,
                    rng: random.Random) -> list[Turn]:
        n_calls = 2 if spec.difficulty == "hard" and len(corpus.tools) > 1 and rng.random() < 0.5 else 1
        turns: list[Turn] = []
        for k, tool in enumerate(rng.sample(corpus.tools, n_calls)):
            cid = call_id(spec.index, k)
            turns.append({"role": "assistant", "content": fill(tool.thought, slots),
                          "tool_call": {"id": cid, "name": tool.name, "arguments": tool.arguments(slots)}})
            turns.append({"role": "tool", "tool_call_id": cid,
                          "content": orjson.dumps(tool.result(slots)).decode()})
        return turns

    def _code_turns(self, corpus: oc.AgentCorpus, spec: ExampleSpec, slots: Slots,
                    rng: random.Random) -> tuple[list[Turn], str]:
        """Turns before the final answer (a code_call and its output, or none) and the fenced block."""
        template = rng.choice(corpus.code)
        code = fill(template.code, slots)
        block = f"```{template.language}\n{code}\n```"
        if template.language in {"python", "sql", "bash"} and rng.random() < CODE_CALL_RATE:
            cid = call_id(spec.index, 0)
            return [{"role": "assistant", "content": "Let me run it once to check the output.",
                     "code_call": {"id": cid, "language": template.language, "code": code}},
                    {"role": "tool", "tool_call_id": cid, "content": template.output}], block
        return [], block
