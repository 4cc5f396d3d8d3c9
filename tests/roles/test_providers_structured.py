"""Structured outputs: pydantic validation, one corrective retry, then a clear failure; key redaction."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from roles.providers import (
    LLMRequest,
    ModelOutputError,
    ProviderConfig,
    RetryPolicy,
    complete_structured,
    make_provider,
)
from roles.providers.secrets import redact, register


class Finding(BaseModel):
    severity: int = Field(ge=1, le=5)
    text: str


class Review(BaseModel):
    verdict: str
    findings: list[Finding]


def _openai(server, monkeypatch, api="chat"):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-structured-000000000")
    return make_provider(ProviderConfig("openai", "gpt-4o-mini", base_url=server.openai_url, api=api),  # type: ignore[arg-type]
                         retry=RetryPolicy(sleep=lambda s: None))


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_valid_json_is_parsed_into_the_model(server, monkeypatch, api):
    server.reply('```json\n{"verdict": "approve", "findings": [{"severity": 2, "text": "typo"}]}\n```')
    review, calls = complete_structured(_openai(server, monkeypatch, api), LLMRequest.of("review"), Review)
    assert review.findings[0].severity == 2 and len(calls) == 1
    body = server.requests[0].body
    fmt = body["response_format"]["json_schema"] if api == "chat" else body["text"]["format"]
    assert fmt["name"] == "Review" and "findings" in json.dumps(fmt["schema"])


def test_malformed_output_is_retried_once_with_the_validation_error(server, monkeypatch):
    server.reply('{"verdict": "approve", "findings": [{"severity": 9, "text": "x"}]}',
                 '{"verdict": "approve", "findings": []}')
    review, calls = complete_structured(_openai(server, monkeypatch), LLMRequest.of("review"), Review)
    assert review.findings == [] and len(calls) == 2
    retry_prompt = server.requests[1].body["messages"][-1]["content"]
    assert "findings.0.severity" in retry_prompt and "less than or equal to 5" in retry_prompt


def test_second_malformed_output_fails_the_task_clearly(server, monkeypatch):
    server.reply("Sure! Here is my review: looks good", "still {not json")
    with pytest.raises(ModelOutputError) as err:
        complete_structured(_openai(server, monkeypatch), LLMRequest.of("review"), Review)
    msg = str(err.value)
    assert "gpt-4o-mini" in msg and "not valid JSON" in msg and "corrective retry" in msg


def test_offline_provider_fills_the_schema_for_free():
    review, calls = complete_structured(make_provider(ProviderConfig("offline", "offline")),
                                        LLMRequest.of("review"), Review)
    assert review.verdict.startswith("offline provider") and calls[0].cost.usd == 0.0


def test_redaction_masks_registered_keys_and_key_shapes():
    register("my-very-secret-token-42")
    text = "auth my-very-secret-token-42 and sk-ant-api03-abcdefghij and sk-proj-ABCDEFGHIJKLMNOPQRSTUV ok"
    out = redact(text)
    assert "secret-token" not in out and "abcdefghij" not in out and "ABCDEFGHIJ" not in out
    assert out.endswith("ok")


def test_an_answer_cut_off_at_the_output_limit_is_said_to_be_cut_off():
    from coordinator.core.llm import Completion, Cost, Usage

    class CutOff:
        name, model = "anthropic", "claude-haiku-4-5"

        def complete(self, request: LLMRequest) -> Completion:
            return Completion('{"verdict": "appr', self.name, self.model, Usage(), Cost(0.0), 0.1, 1,
                              stop_reason="max_tokens")

    with pytest.raises(ModelOutputError) as err:
        complete_structured(CutOff(), LLMRequest.of("review", max_tokens=64), Review)  # type: ignore[arg-type]
    msg = str(err.value)
    assert "returned output that was cut off at the output limit (max_tokens=64, stop reason 'max_tokens')" in msg
    assert "that not valid" not in msg
