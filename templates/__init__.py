"""Jinja2 templates for boards, EXECUTE_NOW files, the team status block and review records.

Lives here: the one Jinja environment (StrictUndefined), its filters and the ``.j2`` files.
May import: coordinator.core only. Everything that renders a template imports this.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemBytecodeCache,
    PackageLoader,
    StrictUndefined,
    TemplateError,
)

from coordinator.core.errors import InternalError
from coordinator.core.grading import format_score
from coordinator.core.llm import format_usd


class TemplateRenderError(InternalError):
    """A template failed to render (a bug in coord or in a customized template)."""


def fmt_num(value: Any) -> str:
    """A number as boards and reports show it (yes/no, n/a for NaN, thousands separators, 4 digits)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if value is None:
        return "—"
    return str(value)


def _bytecode_cache() -> BytecodeCache | None:
    """Compiled templates kept between processes (compiling them all costs ~0.1 s a run).

    Under ``$COORD_CACHE_DIR``, else ``$XDG_CACHE_HOME/coord``, else ``~/.cache/coord``; Jinja
    keys each entry by the template's source checksum, so an edited template is recompiled.
    ``COORD_CACHE_DIR=off`` (or a folder that cannot be made) compiles in memory only.
    """
    root = os.environ.get("COORD_CACHE_DIR")
    if root == "off":
        return None
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "coord")
    folder = Path(root) / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(folder), "coord-%s.cache") if os.access(folder, os.W_OK) else None


class Rendered(str):
    """Text a template rendered: placed in another template as it is (its comments are coord's own)."""

    __slots__ = ()


def _no_markers(value: Any) -> Any:
    """Every value a template prints: an HTML comment mark in it (a title, a note, an error) is written
    as entities, so only the templates' own comments can delimit sections and tasks on a board."""
    if isinstance(value, str) and not isinstance(value, Rendered) and ("<!--" in value or "-->" in value):
        return value.replace("<!--", "&lt;!--").replace("-->", "--&gt;")
    return value


def one_line(value: Any) -> str:
    """A value shown inside one line of a board (a task's title, error, note): line breaks become spaces,
    so the text stays on the line its task's marker is on."""
    text = "" if value is None else str(value)
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one Jinja environment (StrictUndefined: a missing variable is an error)."""
    env = Environment(loader=PackageLoader("templates", ""), undefined=StrictUndefined,
                      autoescape=False, keep_trailing_newline=True, trim_blocks=True,
                      lstrip_blocks=True, bytecode_cache=_bytecode_cache(), finalize=_no_markers)
    env.filters["line"] = one_line
    env.filters["num"] = fmt_num
    env.filters["score"] = format_score
    env.filters["usd"] = format_usd
    return env


def render(name: str, **context: Any) -> str:
    """Render a template by file name."""
    try:
        return Rendered(environment().get_template(name).render(**context))
    except TemplateError as e:
        raise TemplateRenderError(f"template {name!r} failed: {e}") from e


def relative_link(root: Path, from_dir: Path, target: str | Path) -> str | None:
    """A markdown link target for ``target`` (relative to ``root``) that resolves from a file in ``from_dir``.

    None when no such file exists (say, an artifact on a branch not merged yet): the caller
    names the path instead of writing a dead link.
    """
    path = Path(root) / target
    return Path(os.path.relpath(path, from_dir)).as_posix() if path.is_file() else None
