"""Provenance sentences: every report says where its examples and numbers came from."""

from __future__ import annotations

from coordinator.core.provenance import board_line, plan_views, provenance, stand_in

PLAN_TASKS = {
    "generate": {"run": "generate", "params": {"provider": "offline"}},
    "finetune[qa]": {"run": "finetune", "params": {"backend": "dry_run"}},
    "finetune[legal]": {"run": "finetune", "params": {"backend": "dry_run"}},
    "benchmark": {"run": "benchmark", "params": {}},
    "write_notes": {"run": None, "params": {}},
}


def _done(metrics, driver="pipeline"):
    return {"status": "done", "driver": driver, "metrics": metrics}


def test_offline_examples_dry_run_and_stand_in_benchmark_are_named_plainly():
    records = {
        "generate": _done({"examples": 10, "provider": "offline", "model": "offline-templates"}),
        "finetune[qa]": _done({"dry_run": True, "job_status": "validated", "succeeded": False}),
        "finetune[legal]": _done({"dry_run": True, "job_status": "validated", "succeeded": False}),
        "benchmark": _done({"model": "offline-tfidf-retrieval"}),
        "write_notes": _done({}, driver="offline"),
    }
    text = "\n".join(provenance(*plan_views(PLAN_TASKS), records))
    assert "offline stand-in provider" in text and "not model output" in text
    assert "2 jobs **dry run: validated, not trained**" in text and "succeeded" not in text
    assert "`offline-tfidf-retrieval` is the **offline stand-in**" in text and "not LLM results" in text
    assert "Assignments (write_notes): answered by the **offline stand-in driver**" in text
    assert stand_in(provenance(*plan_views(PLAN_TASKS), records))
    # a dry run alone (real examples) still makes the decision a rehearsal
    real_examples = {"generate": _done({"provider": "openai", "model": "gpt-4o-mini"}),
                     "finetune[qa]": records["finetune[qa]"]}
    assert stand_in(provenance(*plan_views(PLAN_TASKS), real_examples))


def test_a_real_provider_and_trained_jobs_are_named_with_their_model():
    records = {
        "generate": _done({"provider": "openai", "model": "gpt-4o-mini"}),
        "finetune[qa]": _done({"dry_run": False, "job_status": "succeeded", "fine_tuned_model": "ft:gpt-x:qa"}),
        "benchmark": {"status": "running", "metrics": {}},
    }
    lines = provenance(*plan_views(PLAN_TASKS), records)
    assert lines == ["Examples (generate): written by provider **openai**, model `gpt-4o-mini`.",
                     "Fine-tuning: 1 job succeeded (model `ft:gpt-x:qa`)."]
    assert not any("stand-in" in line for line in lines)
    assert not stand_in(lines)


def test_nothing_finished_means_no_claims():
    assert provenance(*plan_views(PLAN_TASKS), {"generate": {"status": "running"}}) == []


def test_assignments_name_the_model_or_cli_that_did_them():
    records = {
        "notes": {"status": "done", "driver": "llm", "agent": "claude",
                  "notes": ["answered by anthropic model claude-haiku-4-5"]},
        "fix": {"status": "done", "driver": "cli", "agent": "codex"},
    }
    lines = provenance({}, {}, records)
    assert lines == ["Assignment fix: done by the codex CLI.",
                     "Assignment notes: answered by anthropic model claude-haiku-4-5."]


def test_board_provenance_names_the_benchmark_stand_in_with_the_reports_sentence():
    from coordinator.engine.plan_loader import load_plan
    from pipeline.provenance import BENCHMARK_STAND_IN
    plan = load_plan("week2")
    line = board_line(plan.tasks, {})
    assert f"the benchmark model is {BENCHMARK_STAND_IN}" in line
    assert BENCHMARK_STAND_IN in "\n".join(provenance({"b": "benchmark"}, {}, {
        "b": {"status": "done", "metrics": {"model": "offline-tfidf-retrieval"}}}))
