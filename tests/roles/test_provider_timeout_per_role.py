"""A role's `timeout` bounds each request to its provider; without one the default (120 s) holds."""

from __future__ import annotations

import time

import pytest

from coordinator.core.errors import PlanError
from coordinator.core.llm import LLMRequest
from coordinator.core.plan import RoleBinding
from coordinator.engine.plan_loader import load_plan
from roles.providers import RetryPolicy, make_provider
from roles.providers.config import DEFAULT_TIMEOUT_S, provider_config
from tests.fakes.faults import Fault

KEY = "sk-ant-api03-timeout-test-0000000000"


def _binding(server, **extra) -> RoleBinding:
    return RoleBinding(agent="claude", driver="llm", provider="anthropic", model="claude-haiku-4-5",
                       base_url=server.anthropic_url, **extra)


def test_a_roles_timeout_cuts_a_slow_request_and_the_retry_answers(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.inject("messages", Fault.slow(3.0))
    config = provider_config(_binding(server, timeout=0.3))
    assert config.timeout_s == 0.3
    sleeps: list[float] = []
    provider = make_provider(config, retry=RetryPolicy(base_s=0.01, cap_s=0.05, sleep=sleeps.append))
    started = time.monotonic()
    done = provider.complete(LLMRequest.of("hi"))
    assert done.attempts == 2 and done.text == "All done."
    assert time.monotonic() - started < 2.5  # the slow answer was not waited for


def test_without_a_timeout_the_default_holds(server):
    assert provider_config(_binding(server)).timeout_s == DEFAULT_TIMEOUT_S == 120.0


@pytest.mark.parametrize("value", [0, -1, 7200, "soon"])
def test_a_bad_timeout_is_a_plan_error_with_its_place(tmp_path, value):
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\nroles:\n  lead: {{agent: claude, driver: offline, timeout: {value}}}\n"
                    "tasks:\n  - {id: a, title: A, role: lead, instructions: do it}\n")
    with pytest.raises(PlanError, match=r"p.yaml:3 → roles.lead.timeout"):
        load_plan(str(path))
