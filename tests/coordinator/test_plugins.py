"""A team's own driver, step and validator, shipped as a plugin distribution outside coord's packages.

The distribution lives in ``tmp_path`` (a package plus its ``*.dist-info`` with entry points, as
``pip install`` would leave it) and reaches coord only through the registries: no engine module
is edited or imported by the plugin beyond the public API.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from coordinator.core.errors import PlanErrors
from coordinator.core.ports import DRIVERS, VALIDATORS, driver_traits
from coordinator.core.registry import UnknownPlugin
from coordinator.core.step import STEPS
from coordinator.core.workspace import Workspace
from coordinator.engine.budget import is_paid
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.runner import RunOptions, run_plan

PLUGIN = '''
"""teamplug: a driver that writes a CSV, a step that counts its rows, a validator for CSV headers."""
import csv
from pathlib import Path

from coordinator import StepContext, StepResult, WsPath, step
from coordinator.core.ports import DriverTraits, TaskOutcome


class TableDriver:
    name = "table"
    traits = DriverTraits(paid=True)

    def run(self, task, ctx):
        out = Path(ctx.workspace) / "data" / "table.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = [line.strip() for line in (task.instructions or "").split(";") if line.strip()]
        out.write_text("name,score\\n" + "".join(f"{r},{i}\\n" for i, r in enumerate(rows)))
        return TaskOutcome(status="done", metrics={"rows_written": len(rows)},
                           notes=[f"table driver wrote {len(rows)} rows"])


@step(limits={"minimum": (0, None)})
def count_rows(ctx: StepContext, *, table: WsPath = WsPath("data/table.csv"), minimum: int = 1) -> StepResult:
    with ctx.path(table).open() as fh:
        n = sum(1 for _ in csv.DictReader(fh))
    return StepResult(metrics={"rows": n, "enough": n >= minimum})


def csv_header(path):
    with Path(path).open() as fh:
        header = fh.readline().strip().split(",")
    ok = header == ["name", "score"]
    return ok, "header name,score" if ok else f"unexpected header {header}"
'''

ENTRY_POINTS = """
[coord.drivers]
table = teamplug:TableDriver
broken = teamplug:csv_header

[coord.steps]
count_rows = teamplug:count_rows

[coord.validators]
csv_header = teamplug:csv_header
"""

PLAN = """
name: team
roles:
  builder: {agent: tablebot, driver: table}
tasks:
  - {id: build, title: Build the table, role: builder, instructions: "alpha; beta; gamma"}
  - {id: count, title: Count rows, role: quality, needs: [build], run: count_rows, with: {minimum: 3}}
gates:
  - id: table_ok
    after: [count]
    reviewer: quality
    criteria:
      - {file: data/table.csv, validator: csv_header, critical: true}
      - {metric: count.rows, op: ">=", value: 3}
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The teamplug distribution installed into a directory on ``sys.path``."""
    site = tmp_path / "site"
    (site / "teamplug").mkdir(parents=True)
    (site / "teamplug" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "teamplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: teamplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("teamplug", None)


def test_a_plugin_distribution_adds_a_driver_a_step_and_a_validator_that_a_plan_uses(plugin, tmp_path):
    assert "table" in DRIVERS and "count_rows" in STEPS and "csv_header" in VALIDATORS
    assert driver_traits("table").paid  # the budget asks the driver, not its name
    ws = Workspace.at(tmp_path / "ws")
    ws.root.mkdir()
    (ws.root / "team.yaml").write_text(PLAN)
    plan = load_plan(str(ws.root / "team.yaml"), workspace=ws.root)
    assert is_paid(plan.tasks["build"], _role("table"))

    summary = run_plan(ws, RunOptions(plan=str(ws.root / "team.yaml"), render_interval=0))

    assert summary.exit_code == 0, summary.problems
    tasks, gate = summary.state["tasks"], summary.state["gates"]["table_ok"]
    assert tasks["build"]["status"] == "done" and tasks["build"]["driver"] == "table"
    assert tasks["build"]["metrics"]["rows_written"] == 3
    assert tasks["count"]["metrics"] == {"rows": 3, "enough": True}
    assert gate["status"] == "approved"
    by_kind = {c["kind"]: c for c in gate["criteria"]}
    assert by_kind["file"]["passed"] and "header name,score" in by_kind["file"]["detail"]
    assert by_kind["metric"]["measured"] == 3
    board = (ws.boards / "TABLEBOT_TASKS.md").read_text()
    assert "Build the table" in board and "table driver wrote 3 rows" in board


def test_a_failing_plugin_validator_fails_the_gate_with_its_own_detail(plugin, tmp_path):
    ws = Workspace.at(tmp_path / "ws")
    ws.root.mkdir()
    (ws.root / "team.yaml").write_text(PLAN.replace('"alpha; beta; gamma"', '"alpha"'))
    (ws.root / "data").mkdir()

    summary = run_plan(ws, RunOptions(plan=str(ws.root / "team.yaml"), render_interval=0))

    gate = summary.state["gates"]["table_ok"]
    assert gate["status"] != "approved"
    assert {c["kind"]: c["passed"] for c in gate["criteria"]} == {"file": True, "metric": False}


def test_names_no_distribution_registers_are_plan_errors_listing_what_is_registered(plugin, tmp_path):
    bad = PLAN.replace("validator: csv_header", "validator: tsv").replace("run: count_rows", "run: count_cols")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(PlanErrors) as err:
        load_plan(str(path))
    text = str(err.value)
    assert "tasks[1].run: unknown step 'count_cols'" in text and "count_rows" in text
    assert "unknown validator 'tsv'" in text and "csv_header" in text


def test_a_registered_driver_that_breaks_the_port_is_refused_by_name(plugin):
    with pytest.raises(UnknownPlugin, match=r"driver 'broken' must be a class with a run\(\) method"):
        DRIVERS.get("broken")


def _role(driver: str):
    from coordinator.core.roles import RoleDefinition

    return RoleDefinition("builder", "tablebot", driver, None, None, "test")
