"""Fine-tuning backends: OpenAI against the loopback server (incl. crash/resume and refusal), local QLoRA config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from coordinator.core.errors import BudgetExceeded, ParameterError, TaskError
from coordinator.core.plan import Budget
from coordinator.core.step import StepContext
from coordinator.engine.budget import RunBudget
from coordinator.engine.ledger import Ledger
from pipeline.finetune import JobRecord, finetune
from pipeline.finetune_openai import FinetuneRefused
from tests.fakes.faults import Fault
from tests.fakes.llm_server import FakeLLMServer

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-proj-finetune-test-0123456789"
ROW = {"messages": [{"role": "system", "content": "You are the support agent."},
                    {"role": "user", "content": "My parcel is late."},
                    {"role": "assistant", "content": "Sorry about that; I will check the tracking now."}]}


@pytest.fixture
def server(monkeypatch):
    with FakeLLMServer() as srv:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_url)
        monkeypatch.setenv("COORD_FINETUNE_POLL_S", "0.001")
        yield srv


def _train(ws: Path, n: int = 12) -> Path:
    path = ws / "data/sft/openai/support.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(ROW) + b"\n" for _ in range(n)))
    return path


def _record(ws: Path) -> dict:
    return orjson.loads((ws / "data/finetune/support.job.json").read_bytes())


def _spend(ws: Path, usd: float):
    budget = RunBudget(Ledger.of(ws / ".coord"), "run1", Budget(usd=usd), {})
    return budget.for_task("finetune[support]", "execution", "cursor")


def test_openai_job_runs_to_success_with_events_logged_and_cost_recorded(tmp_path, server):
    _train(tmp_path)
    spend = _spend(tmp_path, 100.0)
    result = finetune(StepContext(workspace=tmp_path, spend=spend), agent="support", backend="openai")
    rec = _record(tmp_path)
    assert rec["status"] == "succeeded" and rec["job_id"].startswith("ftjob-") and rec["remote_file_id"]
    assert rec["fine_tuned_model"].startswith("ft:gpt-4o-mini") and rec["trained_tokens"] == 12345
    assert result.metrics["succeeded"] is True and result.metrics["dry_run"] is False
    assert len(server.calls("files")) == 1 and len(server.calls("ft_create")) == 1
    create = server.calls("ft_create")[0].body
    assert create["method"]["supervised"]["hyperparameters"]["n_epochs"] == 3
    log = (tmp_path / ".coord/logs/finetune/support.log").read_text()
    for status in ("validating_files", "queued", "running", "succeeded"):
        assert f"Job status: {status}" in log or status == "validating_files"
    assert "Created fine-tuning job" in log and KEY not in log
    [row] = Ledger.of(tmp_path / ".coord").calls("run1")
    assert (row["kind"], row["ref"], row["tokens_in"]) == ("finetune", rec["job_id"], 12345)
    assert row["usd"] == pytest.approx(12345 / 1e6 * 3.0)


@pytest.mark.slow
def test_polling_survives_rate_limits_and_server_errors(tmp_path, server):
    _train(tmp_path)
    server.inject("ft_get", Fault.http(429, retry_after=0), Fault.http(500))
    finetune(StepContext(workspace=tmp_path), agent="support", backend="openai")
    assert _record(tmp_path)["status"] == "succeeded" and len(server.calls("ft_create")) == 1


@pytest.mark.parametrize("final", ["failed", "cancelled"])
def test_a_failed_or_cancelled_job_fails_the_step_with_the_reason(tmp_path, server, final):
    _train(tmp_path)
    server.job_script = ["validating_files", "running", final]
    with pytest.raises(TaskError, match=final if final == "cancelled" else "training data failed validation"):
        finetune(StepContext(workspace=tmp_path), agent="support", backend="openai")
    assert _record(tmp_path)["status"] == final


def test_refusal_says_plainly_that_self_serve_fine_tuning_is_closing(tmp_path, server):
    _train(tmp_path)
    server.refuse_new_jobs = "Fine-tuning is not available for new jobs on this account."
    with pytest.raises(FinetuneRefused) as err:
        finetune(StepContext(workspace=tmp_path), agent="support", backend="openai")
    msg = str(err.value)
    assert "not available for new jobs" in msg and "2026-05-07" in msg and "2027-01-06" in msg
    assert "'local'" in msg and "'dry_run'" in msg


def test_a_fine_tune_past_the_budget_is_refused_before_uploading(tmp_path, server):
    _train(tmp_path, n=2000)
    with pytest.raises(BudgetExceeded, match=r"fine-tuning support .* exceeds what is left"):
        finetune(StepContext(workspace=tmp_path, spend=_spend(tmp_path, 0.01)), agent="support", backend="openai")
    assert server.calls("files") == [] and server.calls("ft_create") == []


@pytest.mark.slow
def test_crash_between_job_creation_and_polling_reattaches_to_the_one_job(tmp_path, server):
    _train(tmp_path)
    server.hold("ft_get")  # the child blocks on its first poll, after the job id is on disk
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = ("import sys; from pathlib import Path; from coordinator.core.step import StepContext; "
            "from pipeline.finetune import finetune; "
            "finetune(StepContext(workspace=Path(sys.argv[1])), agent='support', backend='openai')")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env, cwd=REPO)
    try:
        job_path = tmp_path / "data/finetune/support.job.json"
        for _ in range(400):
            if server.calls("ft_get") and job_path.exists() and _record(tmp_path)["job_id"]:
                break
            time.sleep(0.05)
        assert _record(tmp_path)["status"] == "validating_files"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    server.release("ft_get")
    finetune(StepContext(workspace=tmp_path), agent="support", backend="openai")
    assert _record(tmp_path)["status"] == "succeeded"
    assert len(server.calls("ft_create")) == 1 and len(server.calls("files")) == 1


def test_crash_after_create_but_before_the_id_was_saved_finds_the_job(tmp_path, server):
    import openai

    path = _train(tmp_path)
    client = openai.OpenAI(api_key=KEY, base_url=server.openai_url)
    uploaded = client.files.create(file=("support.jsonl", path.read_bytes()), purpose="fine-tune")
    client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=uploaded.id)
    # what the step had saved when it died: the upload, not yet the job id
    finetune(StepContext(workspace=tmp_path), agent="support", backend="dry_run")  # a valid record to edit
    rec = JobRecord.load(tmp_path / "data/finetune/support.job.json")
    assert rec is not None
    rec.backend, rec.dry_run, rec.job_id, rec.status, rec.remote_file_id = "openai", False, "", "uploaded", uploaded.id
    rec.save(tmp_path / "data/finetune/support.job.json")
    finetune(StepContext(workspace=tmp_path), agent="support", backend="openai")
    assert len(server.calls("ft_create")) == 1 and _record(tmp_path)["status"] == "succeeded"


# --- local backend ----------------------------------------------------------------------------------


def test_local_backend_writes_a_validated_qlora_config_and_launch_command(tmp_path):
    _train(tmp_path)
    result = finetune(StepContext(workspace=tmp_path), agent="support", backend="local",
                      model="unsloth/Llama-3.2-3B-Instruct-bnb-4bit", epochs=2)
    rec = _record(tmp_path)
    assert rec["status"] == "prepared" and rec["est_cost_usd"] == 0.0 and result.metrics["cost_known"] is True
    cfg = json.loads(Path(rec["config_path"]).read_text()) if Path(rec["config_path"]).is_absolute() else \
        json.loads((tmp_path / rec["config_path"]).read_text())
    assert cfg["load_in_4bit"] is True and cfg["num_train_epochs"] == 2 and cfg["trainer"] == "unsloth"
    assert cfg["dataset"].endswith("data/sft/openai/support.jsonl")
    assert rec["launch_command"][:3] == ["python", "-m", "pipeline.local_sft"]
    assert any("launch on a GPU machine" in n for n in result.notes)
    check = subprocess.run([sys.executable, *rec["launch_command"][1:], "--check"], cwd=REPO,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert check.returncode == 0, check.stderr
    assert "QLoRA SFT of unsloth/Llama-3.2-3B-Instruct-bnb-4bit" in check.stdout


def test_local_config_validation_names_every_bad_field(tmp_path):
    _train(tmp_path)
    bad = {"base_model": "not a model id", "dataset": str(tmp_path / "missing.jsonl"),
           "output_dir": str(tmp_path / "out"), "load_in_4bit": False, "lora_r": 0, "learning_rate": 3}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(bad))
    check = subprocess.run([sys.executable, "-m", "pipeline.local_sft", "--config", str(path), "--check"],
                           cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert check.returncode == 2
    for field in ("base_model", "lora_r", "learning_rate"):
        assert f"→ {field}:" in check.stderr
    bad.update(base_model="org/model", load_in_4bit=True, lora_r=8, learning_rate=1e-4)
    path.write_text(json.dumps(bad))
    check = subprocess.run([sys.executable, "-m", "pipeline.local_sft", "--config", str(path), "--check"],
                           cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert check.returncode == 2 and "missing.jsonl does not exist" in check.stderr


def test_unknown_backend_lists_the_known_ones(tmp_path):
    _train(tmp_path)
    with pytest.raises(ParameterError, match="known: 'dry_run', 'openai', 'local'"):
        finetune(StepContext(workspace=tmp_path), agent="support", backend="trl")


FAKE_TRAINER = '''
import json, os, subprocess, sys, time
from pathlib import Path
mode, cfg_path = sys.argv[1], sys.argv[sys.argv.index("--config") + 1]
out = Path(json.loads(Path(cfg_path).read_text())["output_dir"])
out.mkdir(parents=True, exist_ok=True)
print("fake trainer", mode, "pid", os.getpid(), flush=True)
if mode == "hang":  # a grandchild in the same process group, to show the whole group is killed
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (out / "grandchild.pid").write_text(str(child.pid))
    time.sleep(600)
elif mode == "exit1":
    sys.exit(1)
elif mode == "succeed":
    time.sleep(0.2)
    (out / "status.json").write_text(json.dumps({"status": "succeeded", "error": None}))
'''


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.fixture
def launch_local(tmp_path, monkeypatch):
    """COORD_LOCAL_LAUNCH=1 with a scripted fake trainer in place of the real one."""
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    monkeypatch.setenv("COORD_LOCAL_LAUNCH", "1")
    monkeypatch.setenv("COORD_LOCAL_POLL_S", "0.05")
    monkeypatch.setenv("COORD_LOCAL_TIMEOUT_S", "2")

    def use(mode: str) -> None:
        monkeypatch.setenv("COORD_LOCAL_TRAINER", f"{sys.executable} {script} {mode}")

    _train(tmp_path)
    return use


def _local(tmp_path):
    return finetune(StepContext(workspace=tmp_path), agent="support", backend="local",
                    model="unsloth/Llama-3.2-3B-Instruct-bnb-4bit")


def test_local_launch_that_succeeds_records_pid_and_model(tmp_path, launch_local):
    launch_local("succeed")
    result = _local(tmp_path)
    rec = _record(tmp_path)
    assert rec["status"] == "succeeded" and result.metrics["succeeded"] is True
    assert isinstance(rec["pid"], int) and rec["launch_command"][0] == sys.executable
    assert rec["fine_tuned_model"].endswith("support.local/adapter")
    assert f"pid {rec['pid']}" in (tmp_path / "data/finetune/support.local/train.log").read_text()


def test_local_launch_that_exits_1_fails_with_its_exit_code(tmp_path, launch_local):
    launch_local("exit1")
    with pytest.raises(TaskError, match=r"exited with code 1 without reporting success \(log: .*train\.log\)"):
        _local(tmp_path)
    rec = _record(tmp_path)
    assert rec["status"] == "failed" and isinstance(rec["pid"], int)


@pytest.mark.slow
def test_local_launch_that_hangs_times_out_and_its_process_group_is_killed(tmp_path, launch_local):
    launch_local("hang")
    started = time.monotonic()
    with pytest.raises(TaskError, match=r"still running after 2 s \(COORD_LOCAL_TIMEOUT_S\); its process "
                                            r"group was killed"):
        _local(tmp_path)
    assert time.monotonic() - started < 20
    rec = _record(tmp_path)
    grandchild = int((tmp_path / "data/finetune/support.local/adapter/grandchild.pid").read_text())
    deadline = time.monotonic() + 5
    while not (_gone(rec["pid"]) and _gone(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(rec["pid"]) and _gone(grandchild)


def test_a_version_2_job_record_still_loads(tmp_path):
    path = tmp_path / "qa.job.json"
    v2 = {"agent": "qa", "backend": "openai", "dry_run": False, "job_id": "ftjob-1", "status": "running",
          "model": "gpt-4o-mini-2024-07-18", "epochs": 3, "training_file": "t.jsonl", "training_file_sha256": "0" * 64,
          "examples": 1, "tokens": 1, "training_tokens": 3, "max_example_tokens": 1, "price_per_1m_tokens": 3.0,
          "est_cost_usd": 0.0, "cost_flag": None, "validation_errors": 0, "fine_tuned_model": None, "error": None,
          "remote_file_id": "file-1", "trained_tokens": None, "last_event_id": None, "config_path": None,
          "launch_command": None, "schema_version": 2}
    path.write_bytes(orjson.dumps(v2))
    rec = JobRecord.load(path)
    assert rec is not None and rec.job_id == "ftjob-1" and rec.pid is None and rec.schema_version == 3


def test_a_resumed_launch_without_a_pid_fails_after_the_timeout_instead_of_waiting_forever(tmp_path, monkeypatch):
    _train(tmp_path)
    _local(tmp_path)  # prepared (not launched)
    path = tmp_path / "data/finetune/support.job.json"
    rec = JobRecord.load(path)
    assert rec is not None and rec.status == "prepared"
    rec.status, rec.pid = "running", None  # what a run launched by an older version left behind
    rec.save(path)
    (tmp_path / "data/finetune/support.job.json.manifest.json").unlink()
    monkeypatch.setenv("COORD_LOCAL_TIMEOUT_S", "0.3")
    monkeypatch.setenv("COORD_LOCAL_POLL_S", "0.05")
    with pytest.raises(TaskError, match=r"reported nothing within 0.3 s .* no pid was recorded"):
        _local(tmp_path)
    assert _record(tmp_path)["status"] == "failed"
