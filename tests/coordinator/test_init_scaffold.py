"""The files `coord init` writes point to README sections that exist and name every driver."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from git import Repo
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.cli.init import CONFIG, GITIGNORE, SAMPLE_PLAN
from coordinator.core.plan import DriverName

README = Path(__file__).resolve().parents[2] / "README.md"


def test_scaffold_comments_name_readme_sections_that_exist():
    headings = {m.group(1).strip() for m in re.finditer(r"^#{2,3} (.+)$", README.read_text(), re.M)}
    cited = re.findall(r'README\.md \(?"?([^")]+)"?', SAMPLE_PLAN + CONFIG)
    sections = [s.strip() for c in cited for s in re.split(r'" and "|, ', c)]
    sections += re.findall(r'README\.md "([^"]+)"', SAMPLE_PLAN + CONFIG)
    assert sections
    assert [s for s in sections if s not in headings] == []


def test_config_comment_lists_every_driver():
    drivers = typing.get_args(DriverName)
    assert [d for d in drivers if not re.search(rf"\b{d} \(", CONFIG)] == []


def test_gitignore_hides_coords_state_but_not_the_data_agents_read_and_write(tmp_path):
    res = CliRunner().invoke(app, ["init", "--git", "-w", str(tmp_path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (tmp_path / ".gitignore").read_text() == GITIGNORE
    repo = Repo(tmp_path)
    assert ".gitignore" in [b.path for b in repo.head.commit.tree.traverse()]
    paths = [".coord/state.db", ".coord/worktrees/r/t/notes.md", "pkg/__pycache__/m.cpython-311.pyc",
             "data/in.jsonl", "data/adp/qa.jsonl", "reports/week_summary.md", "tools/adp_count.py"]
    ignored = set(repo.git.check_ignore("--no-index", *paths, with_exceptions=False).splitlines())
    assert ignored == {".coord/state.db", ".coord/worktrees/r/t/notes.md", "pkg/__pycache__/m.cpython-311.pyc"}
    # the file says why data/ stays visible to git, and how to hide regenerated data instead
    assert "data/ is deliberately NOT ignored" in GITIGNORE and "#   data/generated_examples/" in GITIGNORE
