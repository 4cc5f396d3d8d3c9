"""A typo in coord.yaml's roles names the file, the line and the field, never a library's help URL."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app


@pytest.mark.parametrize(("text", "expected"), [
    ("roles:\n  lead: {agent: claude, driver: offlne}\n",
     "coord.yaml:2 → roles.lead.driver: unknown driver 'offlne' (known: auto, cli, command, human, llm, offline, pipeline)"),
    ("roles:\n  lead:\n    agent: claude\n    drivr: offline\n", "coord.yaml:4 → roles.lead.drivr: unknown field"),
])
def test_a_role_typo_in_coord_yaml_names_file_line_and_field(tmp_path, text, expected):
    (tmp_path / "coord.yaml").write_text(text)
    result = CliRunner().invoke(app, ["run", "week2", "-w", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert expected in " ".join(result.output.split())
    assert "pydantic.dev" not in result.output
