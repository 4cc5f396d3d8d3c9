"""`coord init --example stage1 && coord run stage1`: the README's second example, offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _coord(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "coordinator", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("stage1")
    init = _coord(["init", "--example", "stage1"], ws)
    assert init.returncode == 0, init.stdout + init.stderr
    run = _coord(["run", "stage1"], ws)
    assert run.returncode == 0, run.stdout + run.stderr
    return ws


def test_the_pilot_passes_qc_on_its_third_attempt_after_applying_the_feedback(stage1):
    status = json.loads((stage1 / ".coord" / "status.json").read_text())
    qc = status["gates"]["qc"]
    assert qc["status"] == "approved" and qc["attempt"] == 3
    first, second = ({c["id"]: c["measured"] for c in h["criteria"]} for h in qc["history"])
    assert 0.19 <= first["runaway_rate"] <= 0.23 and 0.48 <= first["token_limit_rate"] <= 0.56
    assert second["runaway_rate"] >= 0.05 and second["token_limit_rate"] < 0.1  # max_tokens was doubled
    pilot = status["tasks"]["pilot"]
    assert pilot["metrics"]["temperature"] == 0.49 and pilot["metrics"]["max_tokens"] == 512
    assert pilot["attempts"] == 3


def test_boards_and_summary_show_each_attempts_measured_rates(stage1):
    board = (stage1 / "task_boards" / "CODEX_TASKS.md").read_text()
    assert re.search(r"attempt 1: runaway_rate=0\.2\d* ✗, token_limit_rate=0\.5\d* ✗; attempt 2: "
                     r"runaway_rate=0\.0\d+ ✗, token_limit_rate=0\.0\d+ ✓; attempt 3: runaway_rate=0 ✓", board)
    summary = (stage1 / "reports" / "week_summary.md").read_text()
    assert summary.startswith("# Stage 1: pilot, QC, scale-out")
    assert re.search(r"\| 1 \| rejected \| runaway_rate < 0\.05 .* \| 0\.2\d* \| < 0\.05 \| FAIL \|", summary)
    assert re.search(r"\| 2 \| rejected \| token_limit_rate < 0\.1 .* \| 0\.0\d+ \| < 0\.1 \| pass \|", summary)
    assert "seeded **stand-in** generator" in summary and "Launch decision (launch gate): GO" in summary


def test_scale_out_heldout_sft_and_evaluation_are_measured(stage1):
    status = json.loads((stage1 / ".coord" / "status.json").read_text())
    shards = [t for t in status["tasks"] if t.startswith("scale[")]
    assert len(shards) == 10 and all(status["tasks"][t]["status"] == "done" for t in shards)
    held = [json.loads(line) for line in (stage1 / "data" / "stage1" / "heldout.jsonl").read_text().splitlines()]
    assert len(held) == 200 and {sum(r["type"] == t for r in held) for t in {r["type"] for r in held}} == {40}
    train = [json.loads(line) for line in (stage1 / "data" / "stage1" / "sft" / "train.jsonl").read_text().splitlines()]
    assert len(train) == status["tasks"]["sft"]["metrics"]["examples"]
    assert not {r["instruction"] for r in held} & {r["messages"][0]["content"] for r in train}
    ev = status["tasks"]["evaluate"]["metrics"]
    assert ev["n"] == 200 and ev["mcnemar_p"] < 0.01 and status["gates"]["launch"]["status"] == "approved"
    from scipy.stats import binomtest
    assert ev["mcnemar_p"] == pytest.approx(binomtest(min(ev["b"], ev["c"]), ev["b"] + ev["c"], 0.5).pvalue)
    budget = status["budget"]
    assert budget["run"]["limit_usd"] == 10 and budget["alerts"] == [0.25, 0.5]
    assert budget["thresholds"] == [0.25, 0.5, 0.83]


def test_the_sft_dry_run_refuses_an_invalid_dataset(stage1, tmp_path):
    ws = tmp_path / "broken"
    ws.mkdir()
    assert _coord(["init", "--example", "stage1"], ws).returncode == 0
    run = _coord(["run", "stage1", "--set", "shards=1"], ws)  # one shard (too little data for launch)
    assert json.loads((ws / ".coord" / "status.json").read_text())["tasks"]["sft"]["status"] == "done", run.stdout
    # a file someone dropped beside the shards, one of its rows without a response
    rows = (ws / "data" / "stage1" / "shards" / "shard-00.jsonl").read_text().splitlines()[:5]
    broken = json.loads(rows[4])
    del broken["response"]
    rows[4] = json.dumps(broken)
    (ws / "data" / "stage1" / "shards" / "shard-extra.jsonl").write_text("\n".join(rows) + "\n")
    again = _coord(["run", "stage1", "--set", "shards=1", "--fresh"], ws)
    assert again.returncode == 1
    status = json.loads((ws / ".coord" / "status.json").read_text())
    assert status["tasks"]["sft"]["status"] == "failed"
    assert "data/stage1/shards/shard-extra.jsonl:5 → response: dataset refused: missing response" in \
        status["tasks"]["sft"]["error"]


def test_an_unknown_example_is_a_usage_error(tmp_path):
    result = _coord(["init", "--example", "stage9"], tmp_path)
    assert result.returncode == 2 and "unknown example 'stage9' (examples: stage1)" in result.stdout + result.stderr
