"""Every top-level function and class of coordinator/ and roles/ is used by the project itself."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("coordinator", "roles")
USERS = ("coordinator", "roles", "pipeline", "reviews", "task_boards", "bench")


def _definitions() -> list[tuple[Path, str]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                decorated = getattr(node, "decorator_list", [])
                if isinstance(node, ast.FunctionDef | ast.ClassDef) and not decorated:
                    out.append((path, node.name))
    return out


def test_no_top_level_function_or_class_is_unused():
    words = Counter(w for pkg in USERS for p in (ROOT / pkg).rglob("*.py")
                    for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", p.read_text(encoding="utf-8")))
    unused = [f"{path.relative_to(ROOT)}: {name}" for path, name in _definitions()
              if words[name] <= 1]  # only its own definition
    assert not unused, "unused code: " + ", ".join(unused)
