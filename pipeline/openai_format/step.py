"""Step ``validate_openai``: validate every OpenAI training file and write a bounded JSON report.

Step metrics: ``files``, ``examples``, ``errors``, ``warnings``, ``files_invalid``,
``tokens_estimated``, ``max_example_tokens``.
"""

from __future__ import annotations

import logging

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError
from coordinator.core.io import atomic_write_json, data_files
from pipeline.openai_format.tokens import (
    CHARS_PER_TOKEN,
    DEFAULT_MODEL,
    REPLY_PRIMER,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    context_limit,
)
from pipeline.openai_format.validate import Bodies, validate_openai_file

log = logging.getLogger(__name__)

DEFAULT_IN_DIR = WsPath("data/sft/openai")
DEFAULT_REPORT = WsPath("reports/openai_validation.json")


@step("validate_openai", limits={"min_examples": (0, None)})
def validate_openai(ctx: StepContext, *, in_dir: WsPath = DEFAULT_IN_DIR,
                    agents: list[str] | None = None,
                    model: str = DEFAULT_MODEL, min_examples: int = 10,
                    report: WsPath = DEFAULT_REPORT) -> StepResult:
    """Validate every OpenAI training file (or those of ``agents``) and write a bounded JSON report."""
    directory = ctx.path(in_dir)
    files = [directory / f"{a}.jsonl" for a in agents] if agents is not None else data_files(directory)
    missing = [f for f in files if not f.exists()]
    if missing:
        raise InputError("training file not found", path=ctx.rel(missing[0]))
    if not files:
        raise InputError("no .jsonl training files", path=ctx.rel(directory))
    out = ctx.path(report)
    params = {"in_dir": str(in_dir), "agents": agents, "model": model, "min_examples": min_examples,
              "report": str(report)}
    run = StepRun(ctx, "validate_openai", params, inputs=files, outputs=[out])
    if (cached := run.cached()) is not None:
        return cached
    reports = []
    bodies = Bodies()  # the agents' files hold the same conversations under other system prompts
    for k, f in enumerate(files):
        ctx.report(f"validating {ctx.rel(f)}", k / len(files))
        r = validate_openai_file(f, model=model, min_examples=min_examples, bodies=bodies)
        r.path = ctx.rel(f)
        reports.append(r)
        log.info("validate_openai: %s — %d examples, %d errors", r.path, r.examples, r.errors)
    metrics: dict[str, MetricValue] = {"files": len(reports), "examples": sum(r.examples for r in reports),
               "errors": sum(r.errors for r in reports), "warnings": sum(r.warnings for r in reports),
               "files_invalid": sum(not r.valid for r in reports),
               "tokens_estimated": sum(r.tokens_estimated for r in reports),
               "max_example_tokens": max(r.max_example_tokens for r in reports)}
    atomic_write_json(out, {"schema_version": 1, "model": model, "context_limit": context_limit(model),
                            "estimator": {"chars_per_token": CHARS_PER_TOKEN, "per_message": TOKENS_PER_MESSAGE,
                                          "per_name": TOKENS_PER_NAME, "reply_primer": REPLY_PRIMER},
                            "totals": metrics, "files": [r.to_dict() for r in reports]})
    run.record(out)
    return run.finish(metrics)
