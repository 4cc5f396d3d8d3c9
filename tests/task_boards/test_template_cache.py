"""Compiled templates are kept between processes, keyed by their source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import templates


def _compile_in_fresh_process(cache: str) -> None:
    code = "import templates; templates.environment().get_template('team_status.md.j2')"
    subprocess.run([sys.executable, "-c", code], check=True, env={"COORD_CACHE_DIR": cache, "PATH": "/usr/bin:/bin"},
                   cwd=Path(templates.__file__).resolve().parents[1])


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_template(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _compile_in_fresh_process(str(cache))
    entries = sorted((cache / "jinja").iterdir())
    assert entries, "the first process wrote no compiled template"
    stamps = {p: p.stat().st_mtime_ns for p in entries}
    _compile_in_fresh_process(str(cache))
    # the second process read the entries (same files, not rewritten)
    assert {p: p.stat().st_mtime_ns for p in sorted((cache / "jinja").iterdir())} == stamps


def test_off_or_unwritable_compiles_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORD_CACHE_DIR", "off")
    assert templates._bytecode_cache() is None
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("COORD_CACHE_DIR", str(blocker / "sub"))
    assert templates._bytecode_cache() is None
