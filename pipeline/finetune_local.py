"""The ``local`` fine-tuning backend: a validated QLoRA SFT config and its launch command for a GPU machine.

``submit`` writes ``<out_dir>/<agent>.local/sft_config.json`` (validated by
:class:`pipeline.local_sft.LocalSFTConfig`, dataset included) and records the command
that trains it. By default the job ends as ``prepared``: copy the workspace to a GPU
machine and run the command there. With ``COORD_LOCAL_LAUNCH=1`` coord launches it
itself (own process group, output to the log) and polls ``status.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

from pipeline._io import atomic_write_text
from pipeline.errors import ParameterError
from pipeline.finetune import FinetuneRequest, JobRecord, SaveFn
from pipeline.local_sft import DEFAULT_BASE_MODEL, LocalSFTConfig, check_dataset

LAUNCH_ENV = "COORD_LOCAL_LAUNCH"


class LocalFinetuneBackend:
    """QLoRA SFT on your own GPU (TRL / Unsloth)."""

    name = "local"
    dry_run = False
    paid = False
    poll_seconds = 30.0

    def __init__(self, *, out_dir: Path | None = None, launch: bool | None = None) -> None:
        self.out_dir = out_dir or Path("data/finetune")
        self.launch = os.environ.get(LAUNCH_ENV) == "1" if launch is None else launch

    def config_for(self, request: FinetuneRequest) -> LocalSFTConfig:
        """The validated config of a request (an OpenAI model name falls back to the default local base)."""
        base = request.model if "/" in request.model else DEFAULT_BASE_MODEL
        job_dir = self.out_dir / f"{request.agent}.local"
        try:
            cfg = LocalSFTConfig(base_model=base, dataset=str(request.training_file.resolve()),
                                 output_dir=str((job_dir / "adapter").resolve()),
                                 num_train_epochs=request.epochs)
        except ValueError as e:
            raise ParameterError(f"local fine-tuning config for {request.agent!r} is invalid: {e}") from None
        problems = check_dataset(Path(cfg.dataset))
        if problems:
            raise ParameterError("local fine-tuning dataset is invalid: " + "; ".join(problems[:5]))
        return cfg

    def submit(self, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """Write the config and the command; launch only when asked."""
        cfg = self.config_for(request)
        job_dir = self.out_dir / f"{request.agent}.local"
        config_path = job_dir / "sft_config.json"
        atomic_write_text(config_path, json.dumps(cfg.model_dump(), indent=2) + "\n")
        command = ["python", "-m", "pipeline.local_sft", "--config", str(config_path.resolve())]
        record = JobRecord.from_request(request, backend=self.name, dry_run=False,
                                        job_id=f"local-{request.training_file_sha256[:12]}", status="prepared")
        record = replace(record, model=cfg.base_model, config_path=str(config_path), launch_command=command)
        if self.launch:
            log_path = job_dir / "train.log"
            with log_path.open("ab") as fh:
                subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            record = replace(record, status="running")
        save(record)
        return record

    def attach(self, record: JobRecord, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """A launched run is polled through its status file; a prepared one stays prepared."""
        return self.poll(record) if record.status == "running" else record

    def poll(self, record: JobRecord) -> JobRecord:
        """Read ``<output_dir>/status.json`` written by the trainer."""
        if record.config_path is None:
            return replace(record, status="failed", error="local job has no config")
        cfg = json.loads(Path(record.config_path).read_text(encoding="utf-8"))
        status_file = Path(cfg["output_dir"]) / "status.json"
        if not status_file.exists():
            return record
        st = json.loads(status_file.read_text(encoding="utf-8"))
        if st.get("status") == "succeeded":
            return replace(record, status="succeeded", fine_tuned_model=cfg["output_dir"])
        if st.get("status") == "failed":
            return replace(record, status="failed", error=st.get("error"))
        return record
