"""The benchmark step: paired baseline vs candidate on held-out items, leakage, determinism."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from coordinator.core.errors import InputError, ParameterError
from coordinator.core.step import STEPS, StepContext
from pipeline.benchmark import benchmark
from pipeline.stats import wilson_interval

OUTPUTS = ("benchmark.json", "benchmark.md", "items.jsonl")


def _row(target: str, source: str, base_id: str, prompt: str, answer: str, *, weight: float = 1.0,
         variant: int = 0, category: str = "general") -> dict[str, Any]:
    return {"id": f"{target}<-{base_id}#{variant}",
            "conversations": [{"from": "system", "value": f"You are the {target} agent (variant {variant})."},
                              {"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
            "weight": weight, "target_agent": target, "source_agent": source, "base_id": base_id,
            "category": category, "difficulty": "easy", "variant": variant}


def _write(path: Path, rows: list[Any], extra_lines: tuple[bytes, ...] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + b"".join(extra_lines))


QA_ITEMS = [("qa-h1", "alpha bravo charlie", "answer one about alpha"),
            ("qa-h2", "delta echo foxtrot", "answer two about delta"),
            ("qa-h3", "golf hotel india", "answer three about golf"),
            ("qa-h4", "juliet kilo lima", "answer four about juliet")]


def _hand_workspace(ws: Path, *, leak: bool = False, bad_lines: tuple[bytes, ...] = ()) -> Path:
    """qa: candidate answers items 1–3 right; baseline (cross rows only) answers item 1 right."""
    _write(ws / "data/heldout/qa.jsonl", [_row("qa", "qa", b, p, a) for b, p, a in QA_ITEMS])
    own = [_row("qa", "qa", f"qa-t{i}", p, a, variant=v)
           for i, (_, p, a) in enumerate(QA_ITEMS[:3], start=1) for v in (0, 1, 2)]
    cross = [_row("qa", "legal", "legal-t1", QA_ITEMS[0][1], QA_ITEMS[0][2], weight=0.5),
             _row("qa", "legal", "legal-t2", QA_ITEMS[3][1], "unrelated statute zulu", weight=0.5)]
    legal = [_row("legal", "legal", "legal-t1", "indemnity clause", "cap the liability"),
             _row("legal", "legal", "legal-t2", "juliet kilo lima", "unrelated statute zulu")]
    if leak:
        legal.append(_row("legal", "qa", "qa-h2", "delta echo foxtrot", "answer two about delta", weight=0.4))
        broken = _row("qa", "qa", "qa-h3", "golf", "answer three about golf")
        del broken["weight"]  # unusable for training, still a leak
        own.append(broken)
    _write(ws / "data/sft_final/unsloth/qa.jsonl", own + cross, bad_lines)
    _write(ws / "data/sft_final/unsloth/legal.jsonl", legal)
    return ws


def _report(ws: Path) -> dict[str, Any]:
    return orjson.loads((ws / "reports/benchmark/benchmark.json").read_bytes())


def test_numbers_match_a_hand_computation(tmp_path: Path) -> None:
    ws = _hand_workspace(tmp_path)
    res = benchmark(StepContext(ws), agents=["qa"])
    m = res.metrics
    assert m["model"] == "offline-tfidf-retrieval"
    assert (m["agents"], m["items"], m["leaked_ids"], m["rejected_lines"]) == (1, 4, 0, 0)
    assert m["qa_baseline_accuracy"] == 0.25 and m["qa_candidate_accuracy"] == 0.75
    assert m["qa_absolute_improvement"] == pytest.approx(50.0)
    assert m["qa_relative_improvement_pct"] == pytest.approx(200.0)  # percent, not a ratio
    assert m["relative_improvement_pct"] == pytest.approx(200.0)
    assert m["qa_mcnemar_p"] == pytest.approx(0.5)  # b=0, c=2: 2 · (1/2)^2
    assert m["qa_adjusted_p"] == pytest.approx(0.5) and m["qa_significant"] is False
    assert m["significant_agents"] == 0

    qa = _report(ws)["agents"]["qa"]
    assert (qa["b"], qa["c"]) == (0, 2)
    assert qa["relative_improvement_ratio"] == pytest.approx(2.0) and "relative_improvement" not in qa
    # every improvement names its unit: percentage points and relative percent, never a bare number
    md = (ws / "reports/benchmark/benchmark.md").read_text()
    assert "| qa | 4 | 25.0% | 75.0% | +50.0 pp | +200.0% |" in md
    assert "improvement +50.0 pp (relative +200.0%)" in md
    assert "points (" not in md and "% relative" not in md
    assert qa["cohens_h"] == pytest.approx(math.pi / 3)  # 2·asin(√.75) − 2·asin(√.25)
    assert qa["candidate_ci"] == pytest.approx(list(wilson_interval(3, 4)))
    assert qa["baseline_ci"] == pytest.approx(list(wilson_interval(1, 4)))
    # three prompt variants of each own example collapse into one memory row
    assert (qa["candidate_memory"], qa["baseline_memory"]) == (5, 2)

    items = [orjson.loads(x) for x in (ws / "reports/benchmark/items.jsonl").read_bytes().splitlines()]
    assert [(i["baseline"]["retrieved"], i["candidate"]["retrieved"]) for i in items] == [
        ("legal-t1#0", "qa-t1#0"), (None, "qa-t2#0"), (None, "qa-t3#0"), ("legal-t2#0", "legal-t2#0")]
    assert [i["candidate"]["correct"] for i in items] == [True, True, True, False]


def test_report_is_labelled_as_the_offline_stand_in(tmp_path: Path) -> None:
    ws = _hand_workspace(tmp_path)
    benchmark(StepContext(ws), agents=["qa"])
    md = (ws / "reports/benchmark/benchmark.md").read_text()
    assert "offline-tfidf-retrieval" in md and "Offline stand-in for a fine-tuned LLM: these are not LLM results" in md
    assert "## qa" in md and "| accuracy | 25.0% | 75.0% |" in md
    report = _report(ws)
    assert report["model"] == "offline-tfidf-retrieval"
    assert report["stand_in"] == "Offline stand-in for a fine-tuned LLM"


def test_planted_heldout_ids_in_training_are_reported_as_leaks(tmp_path: Path) -> None:
    ws = _hand_workspace(tmp_path, leak=True)
    res = benchmark(StepContext(ws), agents=["qa"])
    assert res.metrics["leaked_ids"] == 2
    assert res.metrics["rejected_lines"] == 1  # the broken row is rejected but its id still counts
    report = _report(ws)
    assert report["leakage"] == {"leaked_ids": 2, "examples": ["qa-h2", "qa-h3"]}
    assert report["agents"]["qa"]["leaked_ids"] == 2
    assert any("held-out" in n for n in res.notes)


def test_outputs_are_byte_identical_across_runs_and_workspaces(tmp_path: Path) -> None:
    a = _hand_workspace(tmp_path / "a")
    b = _hand_workspace(tmp_path / "b")
    benchmark(StepContext(a), agents=["qa"])
    first = {n: (a / "reports/benchmark" / n).read_bytes() for n in OUTPUTS}
    benchmark(StepContext(a, force=True), agents=["qa"])
    benchmark(StepContext(b), agents=["qa"])
    for n in OUTPUTS:
        assert (a / "reports/benchmark" / n).read_bytes() == first[n]
        assert (b / "reports/benchmark" / n).read_bytes() == first[n]


def test_rerun_with_same_inputs_is_skipped(tmp_path: Path) -> None:
    ws = _hand_workspace(tmp_path)
    first = benchmark(StepContext(ws), agents=["qa"])
    again = benchmark(StepContext(ws), agents=["qa"])
    assert again.skipped and again.metrics == first.metrics
    changed = benchmark(StepContext(ws), agents=["qa"], match_threshold=0.9)
    assert not changed.skipped


def test_bad_lines_go_to_rejects_and_are_counted(tmp_path: Path) -> None:
    missing_variant = _row("qa", "qa", "qa-t9", "x y", "z")
    del missing_variant["variant"]
    ws = _hand_workspace(tmp_path, bad_lines=(b"{not json\n", orjson.dumps(missing_variant) + b"\n"))
    res = benchmark(StepContext(ws), agents=["qa"])
    assert res.metrics["rejected_lines"] == 2
    assert res.metrics["qa_candidate_accuracy"] == 0.75  # the good rows still count
    rejects = [orjson.loads(x) for x in
               (ws / "reports/benchmark/benchmark.json.rejects.jsonl").read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(12, None), (13, "variant")]
    assert rejects[1]["source"] == "data/sft_final/unsloth/qa.jsonl"


def test_unusable_inputs_and_parameters_are_refused(tmp_path: Path) -> None:
    ws = _hand_workspace(tmp_path)
    with pytest.raises(InputError, match="no held-out file for agent 'support'"):
        benchmark(StepContext(ws), agents=["support"])
    _write(ws / "data/heldout/content.jsonl", [_row("content", "content", "c-1", "p", "a")])
    with pytest.raises(InputError, match="no training file for agent 'content'"):
        benchmark(StepContext(ws))
    with pytest.raises(ParameterError):
        benchmark(StepContext(ws), agents=["qa"], alpha=1.5)
    with pytest.raises(ParameterError):
        benchmark(StepContext(ws), agents=["qa"], match_threshold=0.0)
    with pytest.raises(ParameterError):
        benchmark(StepContext(ws), agents=["../qa"])


def _synthetic_workspace(ws: Path, agents: list[str], seed: int = 3) -> None:
    """Agents whose questions and answers share topic-specific words.

    Every agent trains on every other agent's examples (weights 0.2–0.8).
    Topic 0 of analyst and qa is the same shared topic, so their baselines can
    answer it from each other's rows; every other topic is only in the agent's
    own rows, which only the candidate has seen.
    """
    rng = random.Random(seed)
    shared = [f"sharedw{k}" for k in range(6)]
    shared_guidance = " ".join(rng.choices(shared, k=14))
    examples: dict[str, list[tuple[str, str, str]]] = {}
    for a in agents:
        topics = [[f"{a}{t}w{k}" for k in range(6)] for t in range(6)]
        guidance = [" ".join(rng.choices(words, k=14)) for words in topics]
        if a in ("analyst", "qa"):
            topics[0], guidance[0] = shared, shared_guidance
        exs = []
        for i in range(60):
            t = i % 6
            prompt = " ".join(rng.choices(topics[t], k=10)) + " please help"
            answer = f"Topic {t}: {guidance[t]} " + " ".join(rng.choices(topics[t], k=4))
            exs.append((f"{a}-{i:03d}", prompt, answer))
        examples[a] = exs
    weights = {(tg, s): round(rng.uniform(0.2, 0.8), 1) for tg in agents for s in agents}
    for tg in agents:
        _write(ws / f"data/heldout/{tg}.jsonl", [_row(tg, tg, *ex) for ex in examples[tg][:20]])
        rows = [_row(tg, s, *ex, weight=1.0 if s == tg else weights[tg, s], variant=v)
                for s in agents for ex in examples[s][20:] for v in (0, 1)]
        _write(ws / f"data/sft_final/unsloth/{tg}.jsonl", rows)


def test_candidate_beats_baseline_when_agent_data_helps(tmp_path: Path) -> None:
    agents = ["analyst", "legal", "qa"]
    _synthetic_workspace(tmp_path, agents)
    m = benchmark(StepContext(tmp_path)).metrics
    assert m["agents"] == 3 and m["items"] == 60 and m["leaked_ids"] == 0
    assert m["significant_agents"] == 3
    for a in agents:
        assert float(m[f"{a}_candidate_accuracy"] or 0) > float(m[f"{a}_baseline_accuracy"] or 0)
        assert m[f"{a}_significant"] is True
    # the shared topic is 4 of the 20 held-out items of analyst and qa; legal has none
    assert m["qa_baseline_accuracy"] == m["analyst_baseline_accuracy"] == 0.2
    assert m["legal_baseline_accuracy"] == 0.0 and m["legal_relative_improvement_pct"] is None
    assert m["candidate_accuracy"] == 1.0
    assert m["relative_improvement_pct"] == pytest.approx(100.0 * (1.0 / (8 / 60) - 1.0))
    assert m["min_relative_improvement_pct"] == pytest.approx(400.0)  # legal has no relative value
    assert m["min_absolute_improvement"] == pytest.approx(80.0)


def test_step_contract(tmp_path: Path) -> None:
    spec = STEPS.get("benchmark")
    assert spec.path_params == {"train_dir", "heldout_dir", "out_dir"}
    assert spec.required() == []


def test_launch_gate_passes_with_two_agents_that_both_improve_significantly(tmp_path: Path) -> None:
    # README: `coord run week2 --set agents=[qa,legal]`; the significance criterion is a share of the agents,
    # so a plan with fewer than three agents can pass when every one of them improves significantly
    from coordinator.engine.plan_loader import load_plan
    from reviews.criteria import metric_lookup
    from reviews.gate import review_gate

    agents = ["legal", "qa"]
    _synthetic_workspace(tmp_path, agents)
    m = benchmark(StepContext(tmp_path)).metrics
    assert m["significant_agents"] == 2 and m["significant_share"] == 1.0
    gate = load_plan("week2", overrides={"agents": agents}).gates["launch"]
    metrics = {"benchmark": m, "finetune": {"validation_errors": 0}}
    rec = review_gate(gate, metric_lookup(metrics, {}), tmp_path)
    crit = next(c for c in rec["criteria"] if "significant" in c["label"])
    assert crit["passed"] and crit["target"] == "benchmark.significant_share"
    assert "60%" in crit["label"]


def _ends_on_call(row: dict[str, Any], *, result: bool = False) -> dict[str, Any]:
    call = {"from": "function_call", "value": '{"name": "search_docs", "arguments": {"q": "x"}}'}
    tail = [call, {"from": "observation", "value": "found nothing"}] if result else [call]
    return {**row, "conversations": [*row["conversations"][:2], *tail]}


def test_rows_ending_on_a_tool_call_are_skipped_and_counted_not_rejected(tmp_path: Path) -> None:
    ws = _hand_workspace(tmp_path)
    held = ws / "data/heldout/qa.jsonl"
    extra = _ends_on_call(_row("qa", "qa", "qa-h5", "mike november oscar", "unused"))
    _write(held, [*(orjson.loads(x) for x in held.read_bytes().splitlines()), extra])
    for agent, extra_rows in (
            # qa trains on rows ending on a tool result; legal's file leaks the skipped example
            ("qa", [_ends_on_call(_row("qa", "legal", "legal-t3", "papa quebec", "unused"), result=True),
                    _ends_on_call(_row("qa", "qa", "qa-t7", "romeo sierra", "unused"))]),
            ("legal", [_ends_on_call(_row("legal", "qa", "qa-h5", "mike november oscar", "unused"))])):
        train = ws / f"data/sft_final/unsloth/{agent}.jsonl"
        _write(train, [*(orjson.loads(x) for x in train.read_bytes().splitlines()), *extra_rows])
    res = benchmark(StepContext(ws), agents=["qa"])
    m = res.metrics
    assert (m["heldout_unanswered"], m["training_rows_unanswered"], m["rejected_lines"]) == (1, 2, 0)
    assert m["items"] == 4 and m["qa_candidate_accuracy"] == 0.75  # the same four items as before
    assert m["leaked_ids"] == 1  # the skipped example is still held out
    assert any("1 held out, 2 training" in n for n in res.notes)
    assert not (ws / "reports/benchmark/benchmark.json.rejects.jsonl").exists()


def test_a_heldout_file_with_no_answer_at_all_is_refused_with_the_reason(tmp_path: Path) -> None:
    ws = _hand_workspace(tmp_path)
    _write(ws / "data/heldout/qa.jsonl", [_ends_on_call(_row("qa", "qa", "qa-h1", "p q", "a"))])
    with pytest.raises(InputError, match=r"no usable held-out items \(1 rows end without an answer\)"):
        benchmark(StepContext(ws), agents=["qa"])
