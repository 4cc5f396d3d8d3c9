"""The week2 plan's gates judge what its steps measure."""

from __future__ import annotations

from pathlib import Path

from coordinator.engine.plan_loader import load_plan
from reviews.criteria import metric_lookup
from reviews.gate import review_gate

CLEAN_DATA = {
    "to_adp": {"validation_errors": 0, "rejects": 0},
    "build_sft": {"rejects": 0},
    "audit": {"rejects": 0, "exact_dup_rate": 0.0, "weight_out_of_range": 0, "near_dup_rate": 0.0,
              "pii_rows": 0, "difficulty_max_deviation": 0.0, "too_short_rate": 0.0, "no_end_punct_rate": 0.0},
}


def _data_quality(metrics: dict, tmp_path: Path):
    gate = load_plan("week2").gates["data_quality"]
    return review_gate(gate, metric_lookup(metrics, {}), tmp_path)


def test_clean_data_passes_the_data_quality_gate(tmp_path):
    rec = _data_quality(CLEAN_DATA, tmp_path)
    assert rec["verdict"] == "approved" and rec["score"] == 10.0


def test_a_to_adp_reject_fails_the_data_quality_gate(tmp_path):
    # a malformed raw line is rejected before conversion: validation_errors stays 0, rejects does not
    metrics = {**CLEAN_DATA, "to_adp": {"validation_errors": 0, "rejects": 2}}
    rec = _data_quality(metrics, tmp_path)
    assert rec["verdict"] == "rejected"
    failed = [c for c in rec["criteria"] if not c["passed"]]
    assert [(c["target"], c["measured"]) for c in failed] == [("to_adp.rejects", 2)]
    assert any("no raw line rejected by to_adp" in f for f in rec["findings"])


def test_week2_agents_checks_the_converted_data_before_agents_build_on_it(tmp_path):
    plan = load_plan("week2-agents")
    gate = plan.gates["adp_check"]
    assert gate.blocks == ["plan_notes"]
    clean = review_gate(gate, metric_lookup({"to_adp": {"validation_errors": 0, "rejects": 0}}, {}), tmp_path)
    assert clean["verdict"] == "approved"
    bad = review_gate(gate, metric_lookup({"to_adp": {"validation_errors": 0, "rejects": 1}}, {}), tmp_path)
    assert bad["verdict"] == "rejected"
    assert [c["target"] for c in bad["criteria"] if not c["passed"]] == ["to_adp.rejects"]
