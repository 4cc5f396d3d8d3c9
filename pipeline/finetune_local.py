"""The ``local`` fine-tuning backend: a validated QLoRA SFT config and its launch command for a GPU machine.

``submit`` writes ``<out_dir>/<agent>.local/sft_config.json`` (validated by
:class:`pipeline.local_sft.LocalSFTConfig`, dataset included) and records the command
that trains it. By default the job ends as ``prepared``: copy the workspace to a GPU
machine and run the command there. With ``COORD_LOCAL_LAUNCH=1`` coord launches it
itself with this Python (``sys.executable``), in its own process group, output to
``train.log``; the child's pid is saved in the job record before any waiting, and
``poll`` reads ``status.json`` and watches the process:

- the trainer exits without writing ``succeeded`` → the job fails with its exit code
  and the log's path;
- the wait passes ``COORD_LOCAL_TIMEOUT_S`` (default 6 h) → the whole process group is
  terminated (then killed) and the job fails saying so.

``COORD_LOCAL_TRAINER`` replaces the trainer command (default ``<python> -m
pipeline.local_sft``; ``--config <path>`` is appended), ``COORD_LOCAL_POLL_S`` the poll
interval (default 30 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from coordinator.core.errors import ParameterError
from coordinator.core.io import atomic_write_text
from pipeline.finetune_jobs import FinetuneRequest, JobRecord, SaveFn
from pipeline.local_sft import DEFAULT_BASE_MODEL, LocalSFTConfig, check_dataset

LAUNCH_ENV = "COORD_LOCAL_LAUNCH"
TIMEOUT_ENV = "COORD_LOCAL_TIMEOUT_S"
POLL_ENV = "COORD_LOCAL_POLL_S"
TRAINER_ENV = "COORD_LOCAL_TRAINER"
DEFAULT_TIMEOUT_S = 6 * 3600.0
KILL_GRACE_S = 5.0
"""Seconds between SIGTERM and SIGKILL when a timed-out trainer is stopped."""


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ParameterError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ParameterError(f"{name} must be positive, got {raw!r}")
    return value


def _child_env() -> dict[str, str]:
    """This environment, with this checkout importable (``-m pipeline.local_sft`` works uninstalled too)."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, path) if p)}


def _alive(pid: int) -> bool:
    """True while process ``pid`` exists (and is not a zombie of ours)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (a resumed run): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return done == 0


class LocalFinetuneBackend:
    """QLoRA SFT on your own GPU (TRL / Unsloth)."""

    name = "local"
    dry_run = False
    paid = False
    poll_seconds = 30.0

    def __init__(self, *, out_dir: Path | None = None, launch: bool | None = None,
                 timeout_s: float | None = None, trainer: list[str] | None = None) -> None:
        self.out_dir = out_dir or Path("data/finetune")
        self.launch = os.environ.get(LAUNCH_ENV) == "1" if launch is None else launch
        self.timeout_s = timeout_s if timeout_s is not None else _env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
        self.poll_seconds = _env_seconds(POLL_ENV, self.poll_seconds)
        env_trainer = os.environ.get(TRAINER_ENV)
        self.trainer = trainer or (shlex.split(env_trainer) if env_trainer else
                                   [sys.executable, "-m", "pipeline.local_sft"])
        self._proc: subprocess.Popen[bytes] | None = None
        self._deadline: float | None = None

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
            status_file = Path(cfg.output_dir) / "status.json"
            status_file.unlink(missing_ok=True)  # a status left by an earlier run must not count for this one
            launched = [*self.trainer, "--config", str(config_path.resolve())]
            with (job_dir / "train.log").open("ab") as fh:
                self._proc = subprocess.Popen(launched, stdout=fh, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True, env=_child_env())
            self._deadline = time.monotonic() + self.timeout_s
            record = replace(record, status="running", launch_command=launched, pid=self._proc.pid)
        save(record)  # the pid is on disk before anyone waits on the trainer
        return record

    def attach(self, record: JobRecord, request: FinetuneRequest, save: SaveFn) -> JobRecord:
        """A launched run is polled through its status file and pid; a prepared one stays prepared."""
        if record.status != "running":
            return record
        self._deadline = time.monotonic() + self.timeout_s  # the wait is bounded from here on
        return self.poll(record)

    def _status(self, record: JobRecord) -> tuple[dict[str, object], str]:
        assert record.config_path is not None
        cfg = json.loads(Path(record.config_path).read_text(encoding="utf-8"))
        status_file = Path(cfg["output_dir"]) / "status.json"
        try:
            st = json.loads(status_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or caught mid-write
            st = {}
        return (st if isinstance(st, dict) else {}), str(cfg["output_dir"])

    def _exit_code(self, pid: int | None) -> int | None:
        """The trainer's exit code once it has exited (-1 when it is gone but not ours to reap); None while it runs."""
        if pid is None:
            return None
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll()
        return None if _alive(pid) else -1

    def _stop(self, pid: int) -> None:
        """Terminate the trainer's whole process group, then kill what is left after a grace period."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        end = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < end and self._exit_code(pid) is None:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if self._proc is not None and self._proc.pid == pid:
            self._proc.wait()

    def poll(self, record: JobRecord) -> JobRecord:
        """Read ``<output_dir>/status.json`` and watch the trainer: exit without success or timeout fails the job."""
        if record.config_path is None:
            return replace(record, status="failed", error="local job has no config")
        st, output_dir = self._status(record)
        code = self._exit_code(record.pid)
        if code is not None and not st:  # it may have written its status just before exiting
            st, output_dir = self._status(record)
        log_path = Path(record.config_path).parent / "train.log"
        if st.get("status") == "succeeded":
            return replace(record, status="succeeded", fine_tuned_model=output_dir)
        if st.get("status") == "failed":
            return replace(record, status="failed", error=f"local trainer failed: {st.get('error')} (log: {log_path})")
        if code is not None:
            how = f"exited with code {code}" if code >= 0 else "is gone"
            return replace(record, status="failed",
                           error=f"local trainer (pid {record.pid}) {how} without reporting success (log: {log_path})")
        if self._deadline is not None and time.monotonic() > self._deadline:
            if record.pid is None:  # launched by a version that kept no pid: nothing here can stop it
                return replace(record, status="failed",
                               error=f"local trainer reported nothing within {self.timeout_s:g} s ({TIMEOUT_ENV}) "
                                     f"and no pid was recorded to stop it (log: {log_path})")
            self._stop(record.pid)
            return replace(record, status="failed",
                           error=f"local trainer (pid {record.pid}) still running after {self.timeout_s:g} s "
                                 f"({TIMEOUT_ENV}); its process group was killed (log: {log_path})")
        return record
