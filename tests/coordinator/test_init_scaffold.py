"""The files `coord init` writes point to README sections that exist and name every driver."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from coordinator.cli.init import CONFIG, SAMPLE_PLAN
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
