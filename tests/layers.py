"""The layers contract: imports of coord's own code point one way.

    python -m tests.layers [ROOT]     # exit 1 and one line per violation, file:line first

From the top down (a layer may import any layer below it, never one above):

    coordinator.cli     the composition root (and ``python -m coordinator``)
    web | mcp           the dashboard (``coord serve``) and the MCP server (``coord mcp``): siblings
    task_boards         a state listener on the engine
    coordinator.engine  graph, nodes, scheduler, pool, gates, budget, runner, plan loader
    roles | pipeline    plugins: drivers and the week2 steps; the two never import each other
    reviews             the gate library
    roles.providers     LLM clients
    templates           the Jinja environment and filters
    coordinator.core    the foundation (and ``coordinator`` itself, which re-exports the step API)

Every import counts, those inside functions and under ``TYPE_CHECKING`` too. An import
of coord's own code inside a function is allowed only with a comment on its line or the
line above saying why (CLI start-up, an optional SDK).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

LAYERS: tuple[tuple[str, ...], ...] = (
    ("coordinator.__main__",),
    ("coordinator.cli",),
    ("coordinator.web", "coordinator.mcp"),
    ("task_boards",),
    ("coordinator.engine",),
    ("roles", "pipeline"),
    ("reviews",),
    ("roles.providers",),
    ("templates",),
    ("coordinator.core", "coordinator"),
)
"""Highest first; packages in one tuple are siblings that must not import each other."""
PACKAGES = ("coordinator", "roles", "task_boards", "templates", "pipeline", "reviews")


@dataclass(frozen=True)
class Violation:
    """One import against the contract."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the package named in LAYERS) of a dotted module name; the longest prefix wins."""
    best: tuple[int, str] | None = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (index, name)
    if best is None:
        raise ValueError(f"module {module!r} belongs to no layer")
    return best


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[ast.stmt, str, bool]]:
    """(node, imported module, inside a function) for every import of coord's own packages."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    out: list[tuple[ast.stmt, str, bool]] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{a.name}" if base else a.name for a in node.names]
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                out.append((node, target, id(node) in inside))  # type: ignore[arg-type]
    return out


def check(root: Path) -> list[Violation]:
    """Every violation of the contract in the tree at ``root``."""
    violations: list[Violation] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(root, path)
            source = path.read_text(encoding="utf-8")
            lines = source.splitlines()
            rel = path.relative_to(root).as_posix()
            here, here_name = layer_of(module)
            for node, target, deferred in _imports(ast.parse(source, rel), module, path.name == "__init__.py"):
                there, there_name = layer_of(target)
                if there < here:
                    violations.append(Violation(rel, node.lineno, f"{module} ({here_name}) imports {target} "
                                                f"({there_name}), a higher layer"))
                elif there == here and here_name != there_name \
                        and {here_name, there_name} != {"coordinator.core", "coordinator"}:
                    violations.append(Violation(rel, node.lineno, f"{module} ({here_name}) imports {target}: "
                                                f"{here_name} and {there_name} are siblings that stay apart"))
                if deferred and not _has_reason(lines, node.lineno):
                    violations.append(Violation(rel, node.lineno, f"{module} imports {target} inside a function "
                                                "without a comment saying why (CLI start-up, optional SDK)"))
    return violations


def _has_reason(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or on the line above the run of imports it belongs to (a comment
    line, or the ``with …:  # why`` line whose block they are)."""
    if "#" in lines[lineno - 1]:
        return True
    n = lineno - 2
    while n >= 0 and lines[n].strip().startswith(("from ", "import ")):
        n -= 1
    above = lines[n].strip() if n >= 0 else ""
    return above.startswith("#") or (above.startswith("with ") and "#" in above)


def main(argv: list[str] | None = None) -> int:
    """Print violations; exit 1 when there are any."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else Path(__file__).resolve().parents[1]).resolve()
    violations = check(root)
    for v in violations:
        print(v)
    print(f"layers contract: {len(violations)} violation(s)", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
