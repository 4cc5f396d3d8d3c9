"""Step ``finetune``: one fine-tuning job per agent through a pluggable backend.

The step validates the agent's OpenAI training file (``<train_dir>/openai/<agent>.jsonl``)
with :func:`pipeline.openai_format.validate_openai_file` and refuses an invalid one,
estimates tokens (the validator's documented estimator) × epochs and the cost from
``pipeline/data/prices.yaml`` (an unknown model gets ``null`` and a flag, never a guess),
then drives a :class:`FinetuneBackend`: ``submit`` saves the job record to
``<out_dir>/<agent>.job.json`` through its ``save`` callback at every step that creates
something remote (the uploaded file id, then the job id) — always *before* any waiting —
and ``poll`` runs until the job ends. On a re-run, a recorded job for the same file,
model and epochs is re-attached instead of submitted again.

Backends:

- ``dry_run`` (the default) never leaves the machine; its job id is
  ``dryrun-<sha12 of the file>`` and it ends at once as ``validated`` (never ``succeeded``:
  nothing was trained).
- ``openai`` (:mod:`pipeline.finetune_openai`): upload, create, poll with backoff, copy
  the job's events to ``.coord/logs/finetune/<agent>.log``. OpenAI has announced the
  end of self-serve fine-tuning for new jobs; its refusal is reported as such.
- ``local`` (:mod:`pipeline.finetune_local`): writes a validated TRL/Unsloth QLoRA SFT
  config and the command that trains it on a GPU machine (``status: prepared``), and
  launches it only when asked (``COORD_LOCAL_LAUNCH=1``).

Paid backends check their estimate against the run's budget before uploading anything
(``ctx.spend``) and record the job's cost in the ledger once it succeeds.

Metrics: ``examples``, ``tokens``, ``training_tokens``, ``est_cost_usd`` (None when the
price is unknown), ``cost_known``, ``validation_errors``, ``dry_run``, ``job_status``,
``succeeded`` (a model was trained: false for a dry run), ``fine_tuned_model``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError, ParameterError, TaskError
from coordinator.core.io import sha256_file
from coordinator.core.llm import CallRecord, Cost, Usage
from pipeline.finetune_jobs import (
    DRY_RUN_WORDING,
    PRICES_PATH,
    TERMINAL,
    FinetuneBackend,
    FinetuneRequest,
    JobRecord,
    SaveFn,
    TrainingEstimate,
)
from pipeline.openai_format import DEFAULT_MODEL, FileReport, base_model, validate_openai_file
from pipeline.provenance import finetune_note, finetune_paid, finetune_provenance

log = logging.getLogger(__name__)

DEFAULT_TRAIN_DIR = WsPath("data/sft")
DEFAULT_OUT_DIR = WsPath("data/finetune")
_AGENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class DryRunBackend:
    """Validates and estimates only: no upload, no training, no cost."""

    name = "dry_run"
    dry_run = True
    paid = False
    poll_seconds = 0.0

    def submit(self, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """Record a job whose id derives from the file's sha256 (same file → same id)."""
        return JobRecord.from_request(request, backend=self.name, dry_run=True,
                                      job_id=f"dryrun-{request.training_file_sha256[:12]}", status="submitted")

    def attach(self, record: JobRecord, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """Nothing runs remotely, so the recorded job is current (a record that said otherwise is corrected)."""
        return replace(record, status="validated")

    def poll(self, record: JobRecord) -> JobRecord:
        """A dry run has nothing to wait for: the file is validated, and nothing is trained."""
        return replace(record, status="validated")


def get_backend(name: str, *, log_dir: Path | None = None, out_dir: Path | None = None) -> FinetuneBackend:
    """The backend registered under ``name`` (``log_dir``: job event logs; ``out_dir``: local configs)."""
    if name == "dry_run":
        return DryRunBackend()
    if name == "openai":
        # optional SDK: loads on first use
        from pipeline.finetune_openai import (
            OpenAIFinetuneBackend,  # loads the openai SDK: only when used
        )

        return OpenAIFinetuneBackend(log_dir=log_dir)
    if name == "local":
        from pipeline.finetune_local import LocalFinetuneBackend  # the GPU launcher: only when used

        return LocalFinetuneBackend(out_dir=out_dir)
    raise ParameterError(f"unknown finetune backend {name!r}; known: 'dry_run', 'openai', 'local'")


def load_prices(path: Path = PRICES_PATH) -> dict[str, float]:
    """Training price per 1M tokens by model name."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    table = data.get("training") if isinstance(data, dict) else None
    if not isinstance(table, dict) or not all(isinstance(v, int | float) for v in table.values()):
        raise ParameterError(f"{path}: 'training' must map model names to prices per 1M tokens")
    return {str(k): float(v) for k, v in table.items()}


def estimate_training(report: FileReport, model: str, epochs: int, prices: dict[str, float]) -> TrainingEstimate:
    """Tokens × epochs and the cost at ``prices`` (None plus a flag when the model has no price)."""
    training_tokens = report.tokens_estimated * epochs
    price = prices.get(base_model(model))
    cost = None if price is None else round(training_tokens / 1_000_000 * price, 4)
    flag = None if price is not None else f"no training price for {model!r} in pipeline/data/prices.yaml"
    return TrainingEstimate(report.examples, report.tokens_estimated, report.max_example_tokens, epochs,
                            training_tokens, price, cost, flag)


def _refuse(report: FileReport, rel: str) -> InputError:
    first = report.error_samples[0]
    listed = "; ".join(f"{rel}:{e.line} {e.field}: {e.message}" for e in report.error_samples[:5])
    return InputError(f"training file is not valid for OpenAI fine-tuning ({report.errors} errors): {listed}",
                      path=rel, line=first.line or None, field=first.field)


@step("finetune", limits={"agent": {"pattern": _AGENT_NAME.pattern}, "epochs": (1, None),
                          "backend": {"choices": ("dry_run", "openai", "local")}},
      paid=finetune_paid, provenance=finetune_provenance, board_note=finetune_note)
def finetune(ctx: StepContext, *, agent: str, train_dir: WsPath = DEFAULT_TRAIN_DIR, backend: str = "dry_run",
             model: str = DEFAULT_MODEL, epochs: int = 3, out_dir: WsPath = DEFAULT_OUT_DIR) -> StepResult:
    """Validate ``agent``'s OpenAI training file, estimate tokens and cost, and run (or dry-run) the job."""
    if not isinstance(agent, str) or not _AGENT_NAME.match(agent):
        raise ParameterError(f"agent must match {_AGENT_NAME.pattern}, got {agent!r}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ParameterError(f"epochs must be a positive integer, got {epochs!r}")
    runner = get_backend(backend, log_dir=ctx.workspace / ".coord" / "logs" / "finetune", out_dir=ctx.path(out_dir))
    train = ctx.path(train_dir) / "openai" / f"{agent}.jsonl"
    if not train.exists():
        raise InputError("training file not found", path=ctx.rel(train))
    job_path = ctx.path(out_dir) / f"{agent}.job.json"
    params: dict[str, Any] = {"agent": agent, "train_dir": str(train_dir), "backend": backend, "model": model,
                              "epochs": epochs, "out_dir": str(out_dir)}
    run = StepRun(ctx, "finetune", params, inputs=[train], outputs=[job_path], provider=backend)
    if (cached := run.cached()) is not None:
        return cached
    rel = ctx.rel(train)
    ctx.report(f"validating {rel}", 0.0)
    report = validate_openai_file(train, model=model)
    if not report.valid:
        raise _refuse(report, rel)
    estimate = estimate_training(report, model, epochs, load_prices())
    if backend == "local":  # trained on your own GPU: no API bill to estimate
        estimate = replace(estimate, price_per_1m_tokens=0.0, est_cost_usd=0.0, cost_flag=None)
    if estimate.cost_flag:
        log.warning("finetune %s: %s; cost recorded as null", agent, estimate.cost_flag)
    request = FinetuneRequest(agent, model, epochs, train, rel, sha256_file(train), estimate)
    previous = JobRecord.load(job_path)

    def save(rec: JobRecord) -> None:
        rec.save(job_path)

    if previous is not None and previous.status not in {"failed", "cancelled"} and \
            (previous.backend, previous.training_file_sha256, previous.model, previous.epochs) == \
            (backend, request.training_file_sha256, model, epochs):
        record = runner.attach(previous, request, save)
        log.info("finetune %s: re-attached to job %s", agent, record.job_id or record.remote_file_id)
    else:
        if runner.paid and ctx.spend is not None:  # refuse before anything is uploaded or billed
            ctx.spend.check(estimate.est_cost_usd, f"fine-tuning {agent} on {model}")
        record = runner.submit(request, save)
    record.save(job_path)  # the id is on disk before we wait on the job
    while record.status not in TERMINAL:
        ctx.report(f"job {record.job_id}: {record.status}", None)
        time.sleep(runner.poll_seconds)
        polled = runner.poll(record)
        if polled != record:
            polled.save(job_path)
        record = polled
    if record.status in ("failed", "cancelled"):  # recorded, not vouched for: a retry submits afresh
        raise TaskError(record.error or f"fine-tuning job {record.job_id} ended {record.status}")
    if record.status == "succeeded" and runner.paid and ctx.spend is not None:
        _record_cost(ctx, record, estimate)
    run.record(job_path)
    notes = [f"dry run {record.job_id}: {DRY_RUN_WORDING}" if runner.dry_run else f"job {record.job_id}: {record.status}"]
    if record.error:
        notes.append(record.error)
    if record.launch_command:
        notes.append("launch on a GPU machine: " + " ".join(record.launch_command))
    if estimate.cost_flag:
        notes.append(estimate.cost_flag)
    metrics: dict[str, MetricValue] = {"examples": estimate.examples, "tokens": estimate.tokens, "training_tokens": estimate.training_tokens,
               "est_cost_usd": estimate.est_cost_usd, "cost_known": estimate.est_cost_usd is not None,
               "validation_errors": report.errors, "dry_run": runner.dry_run,
               "succeeded": record.status == "succeeded", "job_status": record.status,
               "fine_tuned_model": record.fine_tuned_model}
    return run.finish(metrics, notes)


def _record_cost(ctx: StepContext, record: JobRecord, estimate: TrainingEstimate) -> None:
    """One ledger row per job (keyed by its id): billed tokens × price, else the estimate."""
    tokens = record.trained_tokens or estimate.training_tokens
    price = estimate.price_per_1m_tokens
    cost = Cost(round(tokens / 1_000_000 * price, 6)) if price is not None else Cost(None, estimate.cost_flag)
    assert ctx.spend is not None
    ctx.spend.record(CallRecord("finetune", record.backend, record.model, usage=Usage(input_tokens=tokens),
                                cost=cost, ref=record.job_id))
