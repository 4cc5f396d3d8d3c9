"""What the reports of a `coord run week2` say: true provenance, statuses, counts, units and links."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import SMALL, run_coord

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def week2(tmp_path_factory) -> Path:
    """One finished offline week2 run shared by the checks below."""
    root = tmp_path_factory.mktemp("week2")
    result = run_coord(["run", "week2", *SMALL], root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def _records(root: Path) -> dict[str, str]:
    run_id = json.loads((root / ".coord/status.json").read_text())["run_id"]
    return {p.stem: p.read_text() for p in (root / "reviews" / run_id).glob("*.md")}


def test_week_summary_and_review_records_state_the_offline_provenance(week2):
    summary = (week2 / "reports/week_summary.md").read_text()
    records = _records(week2)
    assert set(records) == {"data_quality", "launch"}
    for text in (summary, *records.values()):
        assert "## Provenance" in text
        assert "written by the **offline stand-in provider**" in text
    assert re.search(r"GO( — with \d+ open deferred items?: [^*]+)?\*\* — decided on stand-in data \(see Provenance\)", summary)
    for text in (summary, records["launch"]):
        assert "**dry run: validated, not trained**" in text
        assert "`offline-tfidf-retrieval` is the **offline stand-in**" in text


def test_a_dry_run_fine_tune_is_never_reported_as_succeeded(week2):
    texts = [(week2 / "reports/week_summary.md").read_text(), *_records(week2).values(),
             *(p.read_text() for p in (week2 / "task_boards").glob("*.md"))]
    for text in texts:
        assert "job_status=succeeded" not in text and ": succeeded" not in text
    summary = (week2 / "reports/week_summary.md").read_text()
    assert "| finetune[qa] | dry run: validated, not trained |" in summary
    job = json.loads((week2 / "data/finetune/qa.job.json").read_text())
    assert job["dry_run"] is True and job["status"] == "validated"


def test_the_lead_card_counts_the_report_task_it_is_written_by_as_done(week2):
    summary = (week2 / "reports/week_summary.md").read_text()
    assert "| lead | claude | 2/2 |" in summary
    assert "still running" not in summary and "| report | lead | done |" in summary
    status = json.loads((week2 / ".coord/status.json").read_text())
    report = status["tasks"]["report"]["metrics"]
    assert report["tasks_done"] == report["tasks_total"] == len(status["tasks"])


def test_improvements_name_their_unit_and_the_launch_threshold_is_in_pp(week2):
    summary = (week2 / "reports/week_summary.md").read_text()
    launch = _records(week2)["launch"]
    assert "the launch gate needs >= 8 pp (percentage points, not relative %)" in summary
    assert "| benchmark | absolute_improvement | +" in summary and " pp (percentage points) |" in summary
    relative = next(line for line in summary.splitlines() if "| relative_improvement_pct |" in line)
    assert "(relative)" in relative or "n/a (baseline 0)" in relative
    for text in (summary, launch):
        assert "accuracy gain in percentage points (pp, candidate − baseline; not relative %)" in text


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_every_link_in_the_rendered_reports_and_boards_resolves_from_its_file(week2):
    files = [*week2.glob("reports/**/*.md"), *week2.glob("task_boards/*.md"), *week2.glob("reviews/**/*.md"),
             week2 / "TEAM_COORDINATION.md"]
    checked = 0
    for md in files:
        for target in _LINK.findall(md.read_text()):
            if "://" in target:
                continue
            assert not Path(target).is_absolute(), f"{md.relative_to(week2)} links an absolute path {target}"
            assert (md.parent / target.split("#")[0]).is_file(), f"{md.relative_to(week2)} → {target}"
            checked += 1
    assert checked >= 30  # every board lists artifacts; the quality board links both gate records
    launch = _records(week2)["launch"]
    assert "[`reports/benchmark/benchmark.md`](../../reports/benchmark/benchmark.md)" in launch
