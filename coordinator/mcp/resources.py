"""The files ``coord mcp`` serves as resources: boards, EXECUTE_NOW files, review records. Nothing else.

URIs: ``coord://boards/<FILE>.md`` for ``task_boards/<FILE>.md`` and ``coord://reviews/<run>/<gate>.md``
(or ``.json``) for a review record. A name is one path segment of plain characters; the file it
names, with every symlink resolved, must lie inside ``task_boards/`` or ``reviews/<run>/`` of the
workspace and be a regular file. Anything else (``..``, an absolute path, an encoded slash, a link
out of the workspace, another file type) is refused without looking further.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from coordinator.core.workspace import Workspace

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
BOARD_SUFFIXES = (".md",)
REVIEW_SUFFIXES = (".md", ".json")


class Refused(Exception):
    """A resource that is not served (unknown, outside what is served, or not a plain file)."""


@dataclass(frozen=True)
class Served:
    """One file served as a resource."""

    uri: str
    path: Path
    name: str
    description: str
    mime_type: str


def _inside(path: Path, base: Path) -> bool:
    return path.is_relative_to(base.resolve())


def _file(base: Path, parts: list[str], suffixes: tuple[str, ...]) -> Path:
    for part in parts:
        if not NAME.fullmatch(part) or ".." in part:
            raise Refused(f"not a served name: {part!r}")
    if not parts[-1].endswith(suffixes):
        raise Refused(f"only {' and '.join(suffixes)} files are served here")
    path = base.joinpath(*parts).resolve()
    if not _inside(path, base):
        raise Refused("outside the served folder")
    if not path.is_file():
        raise Refused("no such file")
    return path


def board_file(ws: Workspace, name: str) -> Path:
    """``task_boards/<name>`` if it is a served board file."""
    return _file(ws.boards, [name], BOARD_SUFFIXES)


def review_file(ws: Workspace, run: str, name: str) -> Path:
    """``reviews/<run>/<name>`` if it is a served review record."""
    return _file(ws.reviews, [run, name], REVIEW_SUFFIXES)


def served(ws: Workspace) -> list[Served]:
    """Every file served right now: the boards and EXECUTE_NOW files, then the review records."""
    out: list[Served] = []
    if ws.boards.is_dir():
        for path in sorted(ws.boards.glob("*.md")):
            if _ok(lambda p=path: board_file(ws, p.name)):
                kind = "EXECUTE_NOW file" if path.name.endswith("_EXECUTE_NOW.md") else "board"
                out.append(Served(f"coord://boards/{path.name}", path, path.name, f"the {kind} {path.name}",
                                  "text/markdown"))
    if ws.reviews.is_dir():
        for path in sorted(ws.reviews.glob("*/*")):
            run = path.parent.name
            if path.suffix in REVIEW_SUFFIXES and _ok(lambda r=run, p=path: review_file(ws, r, p.name)):
                out.append(Served(f"coord://reviews/{run}/{path.name}", path, f"{run}/{path.name}",
                                  f"review record of gate {path.stem} in run {run}",
                                  "application/json" if path.suffix == ".json" else "text/markdown"))
    return out


def _ok(check: object) -> bool:
    try:
        check()  # type: ignore[operator]
    except Refused:
        return False
    return True
