"""Every top-level function, class and constant of coordinator/ and roles/ is used by the project itself."""

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
    # plugins are used through their entry points
    words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", (ROOT / "pyproject.toml").read_text(encoding="utf-8")))
    unused = [f"{path.relative_to(ROOT)}: {name}" for path, name in _definitions()
              if words[name] <= 1]  # only its own definition
    assert not unused, "unused code: " + ", ".join(unused)


def _constants() -> list[tuple[Path, str, str]]:
    """(file, dotted module, NAME) of every module-level UPPER_CASE assignment."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, ast.AnnAssign) else []
                names = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
                out += [(path, module, n.id) for n in names
                        if isinstance(n, ast.Name) and re.fullmatch(r"_?[A-Z][A-Z0-9_]*", n.id)]
    return out


def test_no_module_constant_is_unused():
    texts = {p: p.read_text(encoding="utf-8") for pkg in USERS for p in (ROOT / pkg).rglob("*.py")}
    unused = []
    for path, module, name in _constants():
        word = re.compile(rf"\b{name}\b")
        used_at_home = len(word.findall(texts[path])) > 1
        used_elsewhere = any(p != path and module in t and word.search(t) for p, t in texts.items())
        if not used_at_home and not used_elsewhere:
            unused.append(f"{path.relative_to(ROOT)}: {name}")
    assert not unused, "unused constants: " + ", ".join(unused)
