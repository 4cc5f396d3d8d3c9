"""Generated examples written by a real LLM (Anthropic, OpenAI, OpenAI-compatible) for the generate step.

Each example is one structured-output call (:func:`roles.providers.complete_structured`)
whose answer must validate as :class:`GeneratedExample`: a user turn first, an assistant
answer last, tool results only right after the call they answer. Call ids are assigned
here (``call_<index><k>``), so rows have the same shape as the offline provider's. The
model is the step's ``model`` parameter, else ``COORD_GENERATE_MODEL``.

Before any call the step asks :meth:`LLMExampleProvider.check_budget` to price the run
(``EST_INPUT_TOKENS`` / ``EST_OUTPUT_TOKENS`` per example from the price table) against
what is left of the budget.
"""

from __future__ import annotations

import os
import random
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from pipeline.errors import ParameterError, PipelineError
from pipeline.providers import ExampleSpec, Kind, RawExample, Turn, call_id
from roles.providers import (
    LLMRequest,
    ProviderConfig,
    ProviderConfigError,
    ProviderError,
    complete_structured,
    make_provider,
)
from roles.providers.pricing import estimate_cost
from roles.providers.types import SpendGuard

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


_KIND_HINT = {
    "chat": "a conversation where the user asks for help and the assistant answers in prose",
    "code": "a request the assistant answers with working code in a fenced block and an explanation",
    "tool": "the assistant calls one tool (tool_call with name and arguments), gets its result in a tool "
            "turn (JSON text), then answers",
}


class LLMExampleProvider:
    """Writes examples through an LLM provider; never plants defects (the model's own flaws are real ones)."""

    plants_traits = False

    def __init__(self, name: str, model: str | None, spend: SpendGuard | None) -> None:
        model = model or os.environ.get(MODEL_ENV)
        try:  # the key first: it is what a new user is most likely missing
            self.llm = make_provider(ProviderConfig(name, model or "unset"), sink=spend)  # type: ignore[arg-type]
        except ProviderConfigError as e:
            raise ParameterError(f"generate with provider {name!r}: {e.message}") from None
        if not model:
            raise ParameterError(f"provider {name!r} needs a model: pass model=… to generate or set {MODEL_ENV}")
        self.name = name
        self.model = model
        self.spend = spend

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

    def example(self, spec: ExampleSpec, rng: random.Random) -> RawExample:
        """Ask the model for one example matching ``spec``."""
        prompt = (f"Write one realistic training example for the {spec.agent!r} agent. Task category: "
                  f"{spec.category}. Difficulty: {spec.difficulty}. Shape: {_KIND_HINT[spec.kind]}. The final "
                  "answer should be 80-350 words, specific and correct. Invent no real people's contact details.")
        try:
            ex, _ = complete_structured(self.llm, LLMRequest.of(prompt, max_tokens=2048, temperature=1.0),
                                        GeneratedExample)
        except ProviderError as e:
            raise PipelineError(f"example {spec.id}: {e}") from None
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
