"""`generate` with a paid provider: concurrent calls, same bytes, answers cached and never paid twice.

Real Anthropic SDK against the loopback server; the server answers from the request body
(``reply_fn``) so answers do not depend on the order concurrent requests arrive in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordinator.core.errors import BudgetExceeded, ParameterError, TaskError
from coordinator.core.plan import Budget
from coordinator.core.step import StepContext
from coordinator.engine.budget import RunBudget
from coordinator.engine.ledger import Ledger
from pipeline.gen_cache import CACHE_DIR
from pipeline.generate import generate
from tests.fakes.faults import Fault

MODEL = "claude-haiku-4-5"


def _answer(body: dict, words: int = 40) -> str:
    """A valid example derived from the prompt only: the same prompt always gets the same answer."""
    prompt = body["messages"][0]["content"]
    tag = hashlib.sha256(prompt.encode()).hexdigest()[:10]
    answer = " ".join(["Check", "the", "config", tag] * (words // 4)) + "."
    turns = [{"role": "user", "content": f"Help with {tag}."}]
    if "calls one tool" in prompt:
        turns += [{"role": "assistant", "content": "Looking it up.", "tool_call": {"name": "lookup", "arguments": {"q": tag}}},
                  {"role": "tool", "content": json.dumps({"found": tag})}]
    turns.append({"role": "assistant", "content": answer})
    return json.dumps({"system": "You are the QA agent of the team.", "turns": turns})


@pytest.fixture
def srv(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-concurrency-000000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    server.reply_fn = _answer
    return server


def _spend(ws: Path, usd: float | None):
    return RunBudget(Ledger.of(ws / ".coord"), "r", Budget(usd=usd), {}).for_task("generate", "lead", "claude")


def _run(ws: Path, n: int, concurrency: int, *, usd: float | None = 10.0, force: bool = False):
    return generate(StepContext(workspace=ws, spend=_spend(ws, usd), force=force), agents=["qa"],
                    examples_per_agent=n, provider="anthropic", model=MODEL, concurrency=concurrency)


def _sha(ws: Path) -> str:
    return hashlib.sha256((ws / "data/generated_examples/qa.jsonl").read_bytes()).hexdigest()


def _calls(ws: Path) -> list[dict]:
    return Ledger.of(ws / ".coord").calls("r")


def _reference(tmp_path: Path, srv, n: int) -> tuple[str, int]:
    """sha256 and number of model calls of an uninterrupted run."""
    ws = tmp_path / "reference"
    before = srv.completions
    _run(ws, n, 4)
    return _sha(ws), srv.completions - before


@pytest.mark.slow
def test_calls_overlap_and_the_file_is_the_same_whatever_the_concurrency(tmp_path, srv):
    srv.latency_s = 0.03
    _run(tmp_path / "one", 16, 1)
    one_calls, one_peak = srv.completions, srv.max_in_flight
    srv.completions = srv.max_in_flight = 0
    result = _run(tmp_path / "eight", 16, 8)
    assert one_peak == 1 and srv.max_in_flight > 1  # calls really overlapped
    assert _sha(tmp_path / "one") == _sha(tmp_path / "eight")
    assert srv.completions == one_calls  # redraws of duplicates happen the same way
    assert len(_calls(tmp_path / "eight")) == srv.completions and all(c["ok"] for c in _calls(tmp_path / "eight"))
    assert result.metrics["examples"] == 16


@pytest.mark.slow
def test_a_failure_half_way_keeps_the_answers_and_the_rerun_pays_only_for_the_rest(tmp_path, srv):
    ref_sha, ref_calls = _reference(tmp_path, srv, 30)
    srv.completions = 0
    srv.fail_after = (10, Fault.http(400, "Your credit balance is too low"))
    ws = tmp_path / "ws"
    with pytest.raises(TaskError, match=r"stopped at example qa-\d+: .*credit balance is too low.*cached in "
                                            r"\.coord/cache/generate/ and a rerun pays only for the rest"):
        _run(ws, 30, 4)
    first = srv.completions
    assert first < ref_calls and len(_calls(ws)) == first  # failed calls are in the ledger too
    assert not (ws / "data/generated_examples/qa.jsonl").exists()

    srv.fail_after = None
    srv.completions = 0
    _run(ws, 30, 4)
    assert srv.completions == ref_calls - 10  # only the ten answered calls were not asked again
    assert _sha(ws) == ref_sha


CHILD = """
import sys
from pathlib import Path
from coordinator.core.step import StepContext
from pipeline.generate import generate
generate(StepContext(workspace=Path(sys.argv[1])), agents=["qa"], examples_per_agent=40, provider="anthropic",
         model=sys.argv[2], concurrency=4)
"""


@pytest.mark.slow
def test_a_killed_step_reruns_paying_only_for_answers_it_had_not_stored(tmp_path, srv):
    ref_sha, ref_calls = _reference(tmp_path, srv, 40)
    srv.completions = 0
    srv.latency_s = 0.05
    ws = tmp_path / "ws"
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ws), MODEL], cwd=root, env={**os.environ},
                             start_new_session=True)
    deadline = time.monotonic() + 60
    while srv.completions < 12 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    stored = sum(1 for _ in next((ws / CACHE_DIR).rglob("qa.jsonl")).open())
    assert stored >= 8  # answers were on disk before the kill

    srv.latency_s = 0.0
    srv.completions = 0
    _run(ws, 40, 4)
    assert srv.completions == ref_calls - stored
    assert _sha(ws) == ref_sha


def test_a_cut_off_cache_line_is_skipped_with_a_warning_and_asked_again(tmp_path, srv, caplog):
    _run(tmp_path, 6, 2)
    cache = next((tmp_path / CACHE_DIR).rglob("qa.jsonl"))
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) - 25])  # a kill in the middle of the last append
    lines = len(data.splitlines())
    srv.completions = 0
    with caplog.at_level(logging.WARNING, logger="pipeline.gen_cache"):
        _run(tmp_path, 6, 2, force=True)
    assert srv.completions == 1
    assert f"{cache}:{lines}: skipped a broken cache line" in caplog.text
    srv.completions = 0
    _run(tmp_path, 6, 2, force=True)  # the fresh answer was appended on a line of its own
    assert srv.completions == 0


@pytest.mark.slow
def test_an_exhausted_budget_stops_new_calls_and_a_raise_finishes_the_rest(tmp_path, srv):
    srv.reply_fn = lambda body: _answer(body, words=2000)  # longer answers than the estimate assumed
    ref_sha, ref_calls = _reference(tmp_path, srv, 30)
    srv.completions = 0
    ws = tmp_path / "ws"
    # estimated $0.087 fits $0.09; the real answers cost ~$0.01 each and each call may cost up to ~$0.011
    # (2048 output tokens), so calls stop being sent once less than that is left: the limit is never crossed
    with pytest.raises(BudgetExceeded, match=r"generate 'qa' stopped: anthropic claude-haiku-4-5 call \(up to 2048 "
                                             r"output tokens\) not started: estimated \$0.01\d* exceeds what is left"
                                             r".*coord budget raise USD.*rerun pays only for the rest"):
        _run(ws, 30, 4, usd=0.09)
    first = srv.completions
    calls = _calls(ws)
    assert 7 <= first < ref_calls and len(calls) == first and all(c["ok"] and not c["pending"] for c in calls)
    assert 0.08 <= sum(c["usd"] for c in calls) <= 0.09
    assert sum(1 for _ in next((ws / CACHE_DIR).rglob("qa.jsonl")).open()) == first  # in-flight answers kept

    Ledger.of(ws / ".coord").change_budget("r", "run", "raise", 1.0)
    srv.completions = 0
    _run(ws, 30, 4, usd=0.09)
    assert srv.completions == ref_calls - first
    assert _sha(ws) == ref_sha and len(_calls(ws)) == ref_calls


def test_rate_limits_are_waited_out_under_concurrency(tmp_path, srv):
    ref_sha, ref_calls = _reference(tmp_path, srv, 12)
    srv.completions = 0
    srv.inject("messages", Fault.http(429, "rate limited", retry_after=0.05),
               Fault.http(429, "rate limited", retry_after=0.05))
    ws = tmp_path / "ws"
    _run(ws, 12, 6)
    assert srv.completions == ref_calls + 2  # two attempts were retried, none failed
    assert _sha(ws) == ref_sha and len(_calls(ws)) == ref_calls


@pytest.mark.parametrize("bad", [0, 65, True, "8", 2.5])
def test_concurrency_is_validated(tmp_path, bad):
    with pytest.raises(ParameterError, match="concurrency must be an integer from 1 to 64"):
        generate(StepContext(workspace=tmp_path), agents=["qa"], examples_per_agent=2, concurrency=bad)


def test_the_offline_provider_ignores_concurrency(tmp_path):
    generate(StepContext(workspace=tmp_path / "a"), agents=["qa"], examples_per_agent=60, concurrency=1)
    generate(StepContext(workspace=tmp_path / "b"), agents=["qa"], examples_per_agent=60, concurrency=16)
    assert _sha(tmp_path / "a") == _sha(tmp_path / "b")
    assert not (tmp_path / "a" / CACHE_DIR).exists()
