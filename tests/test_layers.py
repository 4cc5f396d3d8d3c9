"""The layers contract holds on the code base, and it catches a wrong import."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.layers import PACKAGES, check, layer_of

ROOT = Path(__file__).resolve().parents[1]


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_code_base_keeps_the_layers_contract():
    assert [str(v) for v in check(ROOT)] == []


@pytest.mark.slow
def test_a_foundation_module_importing_the_engine_is_reported_with_file_and_line(tmp_path):
    root = _copy(tmp_path)
    errors = root / "coordinator" / "core" / "errors.py"
    lines = errors.read_text(encoding="utf-8").splitlines()
    at = lines.index("from pathlib import Path") + 1
    lines.insert(at, "from coordinator.engine.runner import run_plan")
    errors.write_text("\n".join(lines) + "\n", encoding="utf-8")

    found = [str(v) for v in check(root)]

    assert found == [f"coordinator/core/errors.py:{at + 1}: coordinator.core.errors (coordinator.core) imports "
                     "coordinator.engine.runner.run_plan (coordinator.engine), a higher layer"]


@pytest.mark.slow
def test_siblings_and_unexplained_deferred_imports_are_reported(tmp_path):
    root = _copy(tmp_path)
    with (root / "pipeline" / "stats.py").open("a", encoding="utf-8") as fh:
        fh.write("\n\ndef _sneak():\n    from roles.task_view import task_view\n    return task_view\n")
    with (root / "reviews" / "grades_probe.py").open("w", encoding="utf-8") as fh:
        fh.write("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from task_boards.render import render_all\n")

    found = [str(v) for v in check(root)]

    assert any("pipeline/stats.py" in f and "siblings that stay apart" in f for f in found)
    assert any("pipeline/stats.py" in f and "inside a function without a comment" in f for f in found)
    assert any(f.startswith("reviews/grades_probe.py:4:") and "a higher layer" in f for f in found)
    assert len(found) == 3


def test_the_longest_package_prefix_decides_a_modules_layer():
    providers, roles = layer_of("roles.providers.config"), layer_of("roles.drivers.cli._driver")
    assert providers[1] == "roles.providers" and roles[1] == "roles"
    assert providers[0] > roles[0]  # providers sit below the drivers that use them
    assert layer_of("coordinator")[1] == "coordinator" and layer_of("coordinator.core.step")[1] == "coordinator.core"
    assert layer_of("coordinator.cli.run")[0] < layer_of("task_boards.sync")[0] < layer_of("coordinator.engine.nodes")[0]
