"""Step parameters out of range are refused when a plan loads, naming file:line and field,
with the same verdict the step itself would reach when it runs."""

from __future__ import annotations

import pytest

from coordinator.core.errors import ParameterError, PlanError
from coordinator.core.limits import Limit
from coordinator.core.step import STEPS, StepContext, step
from coordinator.engine.plan_loader import load_plan
from pipeline.finetune import get_backend
from pipeline.llm_examples import LLM_PROVIDERS

# (step, `with:` in YAML flow style, parameter, words of the error)
BAD = [
    ("benchmark", "{alpha: 0}", "alpha", "alpha must be in (0, 1), got 0"),
    ("benchmark", "{alpha: 1.0}", "alpha", "alpha must be in (0, 1), got 1.0"),
    ("benchmark", "{match_threshold: 0}", "match_threshold", "match_threshold must be in (0, 1], got 0"),
    ("benchmark", "{match_threshold: 1.5}", "match_threshold", "in (0, 1], got 1.5"),
    ("benchmark", "{agents: []}", "agents", "agents must have at least 1 item(s), got []"),
    ("benchmark", "{agents: [qa, 'no good']}", "agents", "agents[1] must match"),
    ("build_sft", "{holdout_fraction: 1.0}", "holdout_fraction", "holdout_fraction must be in [0, 1), got 1.0"),
    ("build_sft", "{holdout_fraction: -0.1}", "holdout_fraction", "in [0, 1), got -0.1"),
    ("build_sft", "{agents: [qa, qa]}", "agents", "agents lists 'qa' more than once"),
    ("audit", "{near_dup_threshold: 0.0}", "near_dup_threshold", "near_dup_threshold must be in (0, 1], got 0.0"),
    ("audit", "{min_words: -1}", "min_words", "min_words must be at least 0, got -1"),
    ("audit", "{sample_size: 101}", "sample_size", "sample_size must be from 0 to 100, got 101"),
    ("audit", "{weight_range: [1.0, 0.0]}", "weight_range", "weight_range must be in ascending order"),
    ("audit", "{weight_range: [0.0]}", "weight_range", "weight_range must have 2 items, got [0.0]"),
    ("audit", "{difficulty_target: {easy: 0.5, hard: 0.4}}", "difficulty_target",
     "difficulty_target must add up to 1, got 0.9"),
    ("audit", "{difficulty_target: {easy: 1.2, hard: -0.2}}", "difficulty_target",
     "difficulty_target['hard'] must be at least 0, got -0.2"),
    ("rebalance", "{target: {easy: 0.7, medium: 0.7}}", "target", "target must add up to 1, got 1.4"),
    ("rebalance", "{target: {}}", "target", "target must add up to 1, got 0"),
    ("finetune", "{agent: qa, epochs: 0}", "epochs", "epochs must be at least 1, got 0"),
    ("finetune", "{agent: qa, backend: trl}", "backend", "backend must be one of dry_run, openai, local, got 'trl'"),
    ("finetune", "{agent: QA}", "agent", "agent must match"),
    ("to_adp", "{compatibility: {qa: {sql: 1.5}}}", "compatibility",
     "compatibility['qa']['sql'] must be from 0 to 1, got 1.5"),
    ("generate", "{agents: [qa], difficulty_mix: {easy: 0.5, medium: 0.6}}", "difficulty_mix",
     "difficulty_mix must add up to 1"),
    ("generate", "{agents: [qa], difficulty_mix: {extreme: 1.0}}", "difficulty_mix",
     "difficulty_mix has unknown keys ['extreme'] (allowed: easy, medium, hard)"),
    ("generate", "{agents: []}", "agents", "agents must have at least 1 item(s)"),
    ("generate", "{agents: [qa], provider: gpt}", "provider",
     "provider must be one of offline, anthropic, openai, openai_compatible, got 'gpt'"),
    ("validate_openai", "{min_examples: -1}", "min_examples", "min_examples must be at least 0, got -1"),
]

GOOD = [
    ("benchmark", "{alpha: 0.5, match_threshold: 1}"),
    ("build_sft", "{holdout_fraction: 0.0, agents: [qa, sql]}"),
    ("audit", "{near_dup_threshold: 1.0, weight_range: [0.0, 0.0], difficulty_target: {easy: 0.3, hard: 0.7}}"),
    ("rebalance", "{target: {easy: 0.1, medium: 0.2, hard: 0.7}}"),
    ("finetune", "{agent: qa, epochs: 1, backend: local}"),
    ("to_adp", "{compatibility: {qa: {sql: 0, qa: 1}}}"),
    ("generate", "{agents: [qa], difficulty_mix: {easy: 0.25, hard: 0.75}}"),
]


def _plan(tmp_path, run: str, with_: str):
    text = f"name: p\ntasks:\n  - id: t\n    title: T\n    role: lead\n    run: {run}\n    with: {with_}\n"
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return load_plan(str(path))


@pytest.mark.parametrize(("run", "with_", "key", "message"), BAD)
def test_out_of_range_step_parameters_are_refused_at_load(tmp_path, run, with_, key, message):
    with pytest.raises(PlanError) as exc:
        _plan(tmp_path, run, with_)
    (line,) = exc.value.describe().replace(f"{tmp_path}/", "").splitlines()
    assert line.startswith(f"plan.yaml:7 → tasks[0].with.{key}: step {run!r}: "), line
    assert message in line, line


@pytest.mark.parametrize(("run", "with_"), GOOD)
def test_values_at_the_edges_of_the_ranges_load(tmp_path, run, with_):
    assert _plan(tmp_path, run, with_).tasks["t"].run == run


@pytest.mark.parametrize(("run", "with_", "key", "message"),
                         [b for b in BAD if b[0] != "validate_openai"])  # it tolerates any minimum
def test_what_the_plan_refuses_the_step_refuses_when_it_runs(tmp_path, run, with_, key, message):
    import yaml

    params = yaml.safe_load(with_)
    with pytest.raises(ParameterError):
        STEPS.get(run).fn(StepContext(tmp_path), **params)


def test_every_finetune_backend_choice_is_known_to_get_backend(tmp_path):
    choices = STEPS.get("finetune").limits["backend"].choices
    assert choices is not None and "openai" in choices
    for name in set(choices) - {"openai"}:  # openai needs an API key to build
        assert get_backend(name, log_dir=tmp_path, out_dir=tmp_path) is not None
    with pytest.raises(ParameterError):
        get_backend("trl")


def test_generate_provider_choices_are_the_providers_get_provider_knows():
    assert STEPS.get("generate").limits["provider"].choices == ("offline", *LLM_PROVIDERS)


def test_a_set_override_out_of_range_names_the_field_and_the_override():
    with pytest.raises(PlanError) as exc:
        load_plan("week2", overrides={"holdout_fraction": 1.0})
    (line,) = exc.value.describe().splitlines()
    assert "with.holdout_fraction: step 'build_sft': holdout_fraction must be in [0, 1), got 1.0" in line
    assert "--set holdout_fraction" in line


@pytest.mark.parametrize("name", ["week2", "week2-agents"])
@pytest.mark.parametrize("profile", [None, "speed", "thorough"])
def test_built_in_plans_still_load(name, profile):
    assert load_plan(name, profile=profile).tasks


@pytest.mark.parametrize(
    ("limit", "words"),
    [(Limit(ge=1, le=64), "from 1 to 64"), (Limit(ge=1), "at least 1"), (Limit(le=2), "at most 2"),
     (Limit(gt=0, lt=1), "in (0, 1)"), (Limit(gt=0, le=1), "in (0, 1]"), (Limit(ge=0, lt=1), "in [0, 1)"),
     (Limit(gt=0), "greater than 0"), (Limit(lt=5), "less than 5")],
)
def test_bounds_read_as_words(limit, words):
    assert limit.bounds() == words


def test_a_step_declaring_an_unknown_limit_field_is_a_programming_error():
    with pytest.raises(TypeError, match=r"step 'odd': unknown limit fields \['between'\]"):
        step("odd", limits={"x": {"between": (0, 1)}})(_odd_step)


def _odd_step(ctx: StepContext, *, x: float = 0.5):  # pragma: no cover - never registered
    raise AssertionError
