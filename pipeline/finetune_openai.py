"""The ``openai`` fine-tuning backend: files API + fine-tuning jobs API through the official SDK.

Exactly-once job creation: the uploaded file id is saved before the job is created and
the job id right after; a resumed step re-attaches to the recorded job. If a crash fell
between the create call and that save, the resume finds the job by its training file
(every upload has a fresh id) before it would create one. Polling backs off from
``POLL_START_S`` to ``POLL_MAX_S``; every new job event is appended to
``.coord/logs/finetune/<agent>.log``. API calls use the provider layer's retry policy
(429 / 5xx / timeouts survived, other 4xx fail at once with OpenAI's message).

OpenAI announced (notice of 2026-05-07) that self-serve fine-tuning closes to new jobs,
with no new jobs accepted from 2027-01-06. When job creation is refused, the error
says so and names the alternatives.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import openai

from coordinator.core.errors import ParameterError, ProviderError, TaskError
from pipeline.finetune_jobs import FinetuneRequest, JobRecord, JobStatus, SaveFn
from roles.providers._sdk import classify
from roles.providers.config import ProviderConfig, require_key
from roles.providers.errors import ProviderConfigError, ProviderRequestError
from roles.providers.retry import RetryPolicy, with_retries
from roles.providers.secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL_START_ENV = "COORD_FINETUNE_POLL_S"
"""Seconds before the first poll (default 10)."""
POLL_MAX_S = 120.0
POLL_GROWTH = 1.5
CLOSURE_NOTICE = ("OpenAI has announced that self-serve fine-tuning is closing to new jobs (notice of 2026-05-07; "
                  "no new jobs from 2027-01-06), which is the likely cause. Use backend 'local' (TRL/Unsloth "
                  "QLoRA on your own GPU) or 'dry_run' instead.")
_STATUS: dict[str, JobStatus] = {"validating_files": "validating_files", "queued": "queued", "running": "running",
                                 "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"}


class FinetuneRefused(TaskError):
    """OpenAI refused to create a fine-tuning job."""


class OpenAIFinetuneBackend:
    """Jobs on OpenAI's fine-tuning API."""

    name = "openai"
    dry_run = False
    paid = True

    def __init__(self, *, log_dir: Path | None = None, client: Any = None, retry: RetryPolicy | None = None,
                 poll_start_s: float | None = None) -> None:
        self.config = ProviderConfig("openai", "fine-tuning")
        try:
            self.client = client or openai.OpenAI(api_key=require_key(self.config),
                                                  base_url=self.config.resolved_base_url(), max_retries=0,
                                                  timeout=self.config.timeout_s)
        except ProviderConfigError as e:
            raise ParameterError(f"finetune backend 'openai': {e.message}") from None
        self.retry = retry or RetryPolicy()
        self.log_dir = log_dir
        self.poll_seconds = poll_start_s if poll_start_s is not None else float(os.environ.get(POLL_START_ENV, "10"))

    # --- API plumbing ------------------------------------------------------------------------

    def _api(self, fn: Callable[[], T], what: str) -> T:
        def once() -> T:
            try:
                return fn()
            except BaseException as e:
                mapped = classify("openai", e, openai, self.config.timeout_s)
                if mapped is e:
                    raise
                raise mapped from None

        try:
            return with_retries(once, self.retry, f"openai {what}")[0]
        except ProviderRequestError:
            raise
        except ProviderError as e:
            raise TaskError(f"openai {what} failed: {e}") from None

    # --- protocol ------------------------------------------------------------------------------

    def submit(self, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """Upload the file (id saved), create the job (id saved), return the record."""
        data = request.training_file.read_bytes()
        try:
            uploaded = self._api(lambda: self.client.files.create(
                file=(request.training_file.name, data, "application/jsonl"), purpose="fine-tune"), "file upload")
        except ProviderRequestError as e:
            raise TaskError(f"OpenAI refused the training file upload: {e.provider_message}") from None
        record = JobRecord.from_request(request, backend=self.name, dry_run=False, job_id="", status="uploaded")
        record.remote_file_id = uploaded.id
        save(record)
        return self._create(record, request, save)

    def attach(self, record: JobRecord, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """Continue the recorded job; create one only if none exists for the recorded upload."""
        if record.job_id:
            return self.poll(record)
        if record.remote_file_id:
            fid = record.remote_file_id
            found = self._api(lambda: self.client.fine_tuning.jobs.list(limit=100), "job listing")
            match = next((j for j in found.data if j.training_file == fid), None)
            if match is not None:
                log.info("finetune %s: found job %s created before a crash", record.agent, match.id)
                recovered = replace(record, job_id=match.id, status=_STATUS.get(match.status, "submitted"))
                save(recovered)
                return recovered
            return self._create(record, request, save)
        return self.submit(request, save)

    def _create(self, record: JobRecord, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        fid = record.remote_file_id
        assert fid is not None, "a job is created only after its file was uploaded"
        try:
            job = self._api(lambda: self.client.fine_tuning.jobs.create(
                model=request.model, training_file=fid, suffix=f"coord-{request.agent}"[:18],
                method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": request.epochs}}}),
                "job creation")
        except ProviderRequestError as e:
            raise FinetuneRefused(f"OpenAI refused to create a fine-tuning job (HTTP {e.status}: "
                                  f"{e.provider_message}). {CLOSURE_NOTICE}") from None
        created = replace(record, job_id=job.id, status=_STATUS.get(job.status, "submitted"))
        save(created)  # the id is on disk before anyone waits on the job
        self._log(created, f"created job {job.id} on file {fid} ({request.model}, {request.epochs} epochs)")
        return created

    def poll(self, record: JobRecord) -> JobRecord:
        """The job's state now; new events go to the log; the next poll waits longer."""
        job = self._api(lambda: self.client.fine_tuning.jobs.retrieve(record.job_id), "job status")
        last = self._copy_events(record)
        self.poll_seconds = min(POLL_MAX_S, self.poll_seconds * POLL_GROWTH)
        error = None
        if job.status == "failed":
            detail = getattr(job.error, "message", None) if job.error is not None else None
            error = f"OpenAI fine-tuning job {job.id} failed: {redact(detail or 'no reason given')}"
        elif job.status == "cancelled":
            error = f"OpenAI fine-tuning job {job.id} was cancelled"
        return replace(record, status=_STATUS.get(job.status, record.status), fine_tuned_model=job.fine_tuned_model,
                       trained_tokens=job.trained_tokens, last_event_id=last, error=error)

    # --- events ------------------------------------------------------------------------------

    def _copy_events(self, record: JobRecord) -> str | None:
        page = self._api(lambda: self.client.fine_tuning.jobs.list_events(record.job_id, limit=100), "job events")
        fresh = []
        for event in page.data:  # newest first
            if event.id == record.last_event_id:
                break
            fresh.append(event)
        for event in reversed(fresh):
            self._log(record, f"[{event.level}] {event.message}")
        return page.data[0].id if page.data else record.last_event_id

    def _log(self, record: JobRecord, line: str) -> None:
        log.info("finetune %s: %s", record.agent, line)
        if self.log_dir is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{record.agent}.log").open("a", encoding="utf-8") as fh:
            fh.write(redact(f"{record.job_id or '-'} {line}") + "\n")
