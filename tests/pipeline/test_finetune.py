"""The finetune step with the dry-run backend: validation, estimates, job records, resume."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from coordinator.core.errors import InputError, ParameterError
from coordinator.core.step import StepContext
from pipeline.finetune import JobRecord, finetune, load_prices
from pipeline.openai_format import estimate_tokens

EXAMPLE = {"messages": [{"role": "system", "content": "You are the support agent."},
                        {"role": "user", "content": "My order ORD-2024-004512 has not arrived."},
                        {"role": "assistant", "content": "I am sorry about that; let me check the tracking."}]}


def training_file(ws: Path, agent: str = "support", n: int = 12, bad: dict[int, dict] | None = None) -> Path:
    rows = [EXAMPLE] * n
    for index, row in (bad or {}).items():
        rows[index] = row
    path = ws / "data/sft/openai" / f"{agent}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def job(ws: Path, agent: str = "support") -> dict:
    return orjson.loads((ws / "data/finetune" / f"{agent}.job.json").read_bytes())


def test_dry_run_writes_a_job_record_with_estimates(tmp_path):
    path = training_file(tmp_path)
    result = finetune(StepContext(workspace=tmp_path), agent="support", epochs=2)
    tokens = 12 * estimate_tokens(EXAMPLE)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    m = result.metrics
    assert (m["examples"], m["tokens"], m["training_tokens"]) == (12, tokens, 2 * tokens)
    assert m["dry_run"] is True and m["validation_errors"] == 0 and m["cost_known"] is True
    assert m["est_cost_usd"] == round(2 * tokens / 1e6 * load_prices()["gpt-4o-mini-2024-07-18"], 4)
    record = job(tmp_path)
    # a dry run trained nothing: it never reports "succeeded"
    assert record["dry_run"] is True and record["status"] == "validated"
    assert m["job_status"] == "validated" and m["succeeded"] is False and m["fine_tuned_model"] is None
    assert any("validated, not trained" in n for n in result.notes)
    assert record["job_id"] == f"dryrun-{sha[:12]}" and record["training_file_sha256"] == sha
    assert record["training_file"] == "data/sft/openai/support.jsonl"
    assert record["est_cost_usd"] == m["est_cost_usd"] and record["cost_flag"] is None


def test_an_invalid_training_file_is_refused_with_file_and_line(tmp_path):
    training_file(tmp_path, bad={2: {**EXAMPLE, "weight": 0.6}})
    with pytest.raises(InputError, match=r"support\.jsonl:3 weight: top-level 'weight'") as err:
        finetune(StepContext(workspace=tmp_path), agent="support")
    assert err.value.line == 3 and err.value.field == "weight"
    assert not (tmp_path / "data/finetune/support.job.json").exists()


def test_unknown_model_cost_is_null_and_flagged(tmp_path):
    training_file(tmp_path)
    result = finetune(StepContext(workspace=tmp_path), agent="support", model="gpt-unknown-2030")
    assert result.metrics["est_cost_usd"] is None and result.metrics["cost_known"] is False
    record = job(tmp_path)
    assert record["est_cost_usd"] is None and record["price_per_1m_tokens"] is None
    assert "gpt-unknown-2030" in record["cost_flag"] and any("no training price" in n for n in result.notes)


def test_fine_tuned_models_are_priced_as_their_base(tmp_path):
    training_file(tmp_path)
    result = finetune(StepContext(workspace=tmp_path), agent="support", model="ft:gpt-4o-mini-2024-07-18:acme::x1")
    assert result.metrics["cost_known"] is True


def test_rerun_is_skipped_and_a_changed_file_gets_a_new_job(tmp_path):
    training_file(tmp_path)
    ctx = StepContext(workspace=tmp_path)
    finetune(ctx, agent="support")
    first_id = job(tmp_path)["job_id"]
    assert finetune(ctx, agent="support").skipped
    training_file(tmp_path, n=15)
    changed = finetune(ctx, agent="support")
    assert not changed.skipped and changed.metrics["examples"] == 15
    assert job(tmp_path)["job_id"] != first_id


def test_a_recorded_job_is_reattached_not_submitted_again(tmp_path):
    path = training_file(tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    finetune(StepContext(workspace=tmp_path), agent="support")
    record_path = tmp_path / "data/finetune/support.job.json"
    # a crash after submit: the record says "submitted" and no manifest vouches for it
    record = JobRecord.load(record_path)
    assert record is not None and record.training_file_sha256 == sha
    record.job_id, record.status = "dryrun-earlier-run", "submitted"
    record.save(record_path)
    (tmp_path / "data/finetune/support.job.json.manifest.json").unlink()
    finetune(StepContext(workspace=tmp_path), agent="support")
    assert (job(tmp_path)["job_id"], job(tmp_path)["status"]) == ("dryrun-earlier-run", "validated")


def test_a_dry_run_record_that_said_succeeded_is_corrected_on_reattach(tmp_path):
    training_file(tmp_path)
    finetune(StepContext(workspace=tmp_path), agent="support")
    record_path = tmp_path / "data/finetune/support.job.json"
    record = JobRecord.load(record_path)
    assert record is not None
    record.status = "succeeded"  # what older versions wrote for a dry run
    record.save(record_path)
    (tmp_path / "data/finetune/support.job.json.manifest.json").unlink()
    result = finetune(StepContext(workspace=tmp_path), agent="support")
    assert job(tmp_path)["status"] == "validated" and result.metrics["succeeded"] is False


@pytest.mark.parametrize(("kwargs", "error", "needle"), [
    ({"backend": "openai"}, ParameterError, "needs an API key: set OPENAI_API_KEY"),
    ({"backend": "magic"}, ParameterError, "unknown finetune backend"),
    ({"epochs": 0}, ParameterError, "epochs"),
    ({"agent": "legal"}, InputError, r"legal\.jsonl"),
])
def test_bad_requests_are_refused(tmp_path, kwargs, error, needle):
    training_file(tmp_path)
    with pytest.raises(error, match=needle):
        finetune(StepContext(workspace=tmp_path), **{"agent": "support", **kwargs})
