"""Fine-tuning jobs: the request, the job record kept on disk, and the backend protocol.

Shared by the ``finetune`` step (:mod:`pipeline.finetune`) and its backends
(:mod:`pipeline.finetune_openai`, :mod:`pipeline.finetune_local`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal, Protocol

import orjson

from coordinator.core.io import atomic_write_json

JobStatus = Literal["uploaded", "submitted", "validating_files", "queued", "running", "succeeded", "failed",
                    "cancelled", "prepared", "validated"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "prepared", "validated"})
"""``prepared``: a local run whose config and launch command are written but not launched here;
``validated``: a dry run — the file was validated and the cost estimated, nothing was trained."""
DRY_RUN_WORDING = "validated, not trained"
"""How reports describe a dry-run job: the file passed validation and nothing was trained."""
JOB_SCHEMA_VERSION = 3
"""3 added ``pid``; a version-2 record still loads (its pid is unknown)."""
PRICES_PATH = Path(__file__).parent / "data" / "prices.yaml"


@dataclass(frozen=True)
class TrainingEstimate:
    """Tokens and cost of training one file."""

    examples: int
    tokens: int
    """Estimated tokens in the file (one epoch)."""
    max_example_tokens: int
    epochs: int
    training_tokens: int
    """``tokens × epochs``: what training is billed on."""
    price_per_1m_tokens: float | None
    est_cost_usd: float | None
    cost_flag: str | None
    """Why the cost is unknown, when it is."""


@dataclass(frozen=True)
class FinetuneRequest:
    """What a backend needs to start a job."""

    agent: str
    model: str
    epochs: int
    training_file: Path
    training_file_rel: str
    training_file_sha256: str
    estimate: TrainingEstimate


@dataclass
class JobRecord:
    """The persisted state of one job (``<agent>.job.json``); no timestamps so re-runs are byte-stable."""

    agent: str
    backend: str
    dry_run: bool
    job_id: str
    status: JobStatus
    model: str
    epochs: int
    training_file: str
    training_file_sha256: str
    examples: int
    tokens: int
    training_tokens: int
    max_example_tokens: int
    price_per_1m_tokens: float | None
    est_cost_usd: float | None
    cost_flag: str | None
    validation_errors: int
    fine_tuned_model: str | None = None
    error: str | None = None
    remote_file_id: str | None = None
    """The uploaded training file (OpenAI), saved before the job is created."""
    trained_tokens: int | None = None
    """Tokens the provider reports it trained on (billed)."""
    last_event_id: str | None = None
    """Newest job event already copied to the log."""
    config_path: str | None = None
    """Local backend: the validated SFT config."""
    launch_command: list[str] | None = None
    """Local backend: the command that trains on a GPU machine."""
    pid: int | None = None
    """Local backend launched here: the trainer's process id (also its process group), saved before waiting."""
    schema_version: int = JOB_SCHEMA_VERSION

    @classmethod
    def from_request(cls, req: FinetuneRequest, *, backend: str, dry_run: bool, job_id: str,
                     status: JobStatus) -> JobRecord:
        """A fresh record for a job just submitted."""
        e = req.estimate
        return cls(agent=req.agent, backend=backend, dry_run=dry_run, job_id=job_id, status=status, model=req.model,
                   epochs=req.epochs, training_file=req.training_file_rel,
                   training_file_sha256=req.training_file_sha256, examples=e.examples, tokens=e.tokens,
                   training_tokens=e.training_tokens, max_example_tokens=e.max_example_tokens,
                   price_per_1m_tokens=e.price_per_1m_tokens, est_cost_usd=e.est_cost_usd,
                   cost_flag=e.cost_flag, validation_errors=0)

    @classmethod
    def load(cls, path: Path) -> JobRecord | None:
        """The record at ``path``, or None when absent or not a record of this schema."""
        try:
            data = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or data.get("schema_version") not in (2, JOB_SCHEMA_VERSION):
            return None
        if data["schema_version"] == 2:  # version 2 had no pid; its jobs are still re-attached
            data = {**data, "pid": None, "schema_version": JOB_SCHEMA_VERSION}
        if set(data) != names:
            return None
        return cls(**data)

    def save(self, path: Path) -> None:
        """Write atomically (the job id must be on disk before anyone waits on the job)."""
        atomic_write_json(path, asdict(self))


SaveFn = Callable[[JobRecord], None]
"""Persists a record atomically; backends call it as soon as something exists remotely."""


class FinetuneBackend(Protocol):
    """Where jobs run. ``submit`` returns at once with an id; ``poll`` is called until a terminal status."""

    name: str
    dry_run: bool
    paid: bool
    """True when jobs cost money (checked against the budget, recorded in the ledger)."""
    poll_seconds: float
    """Seconds before the next poll (a backend may grow it between polls)."""

    def submit(self, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """Start a job, saving its record as soon as each remote id exists, and return the record."""
        ...

    def attach(self, record: JobRecord, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """Re-attach to a job recorded earlier (resume after a crash) instead of submitting again."""
        ...

    def poll(self, record: JobRecord) -> JobRecord:
        """The job's current state."""
        ...
