"""The dashboard's Jinja environment (HTML: autoescaped, StrictUndefined) and its render functions.

The boards' environment (:mod:`templates`) writes markdown and escapes nothing; HTML needs its own,
with the same number, score and money filters so a figure reads the same on a board and a page.
A run page is made of sections (macros of ``_run.html.j2``); the event stream re-renders the same
macros, so a live update and a reload show the same HTML.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateError
from markupsafe import Markup

from coordinator.core.grading import format_score
from coordinator.core.llm import format_usd
from templates import TemplateRenderError, fmt_num

RUN_SECTIONS = ("summary", "attention", "dag", "gates", "tasks", "deferred", "events")
"""The parts of a run page that update live, in page order."""


def _pct(value: Any) -> str:
    if value is None:
        return "—"
    return f"{100 * float(value):.1f}".removesuffix(".0") + "%"


def _ticks(text: Any) -> Markup:
    """Text with its `backticked` spans (commands in coord's messages) set as code; the rest escaped."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show the text as it is
        return Markup.escape(str(text))
    return Markup("").join(Markup("<code>{}</code>").format(p) if i % 2 else Markup.escape(p)
                           for i, p in enumerate(parts))


def _when(value: Any) -> str:
    """An ISO timestamp as a person reads it, in UTC: ``2026-12-06 16:26:08 UTC`` (empty for none)."""
    if not value:
        return ""
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if at.tzinfo is not None else "")


def _seconds(value: Any) -> str:
    if value is None:
        return ""
    s = float(value)
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.1f}min"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one HTML environment of the dashboard."""
    env = Environment(loader=PackageLoader("coordinator.web", "templates"), undefined=StrictUndefined,
                      autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt_num
    env.filters["score"] = format_score
    env.filters["usd"] = format_usd
    env.filters["pct"] = _pct
    env.filters["seconds"] = _seconds
    env.filters["ticks"] = _ticks
    env.filters["when"] = _when
    env.globals["new_key"] = lambda: uuid.uuid4().hex  # a decision form's idempotency key, one per form drawn
    return env


def render_page(name: str, **context: Any) -> str:
    """Render a page template."""
    try:
        return environment().get_template(name).render(**context)
    except TemplateError as e:
        raise TemplateRenderError(f"dashboard template {name!r} failed: {e}") from e


def render_sections(context: dict[str, Any]) -> dict[str, str]:
    """Each live section of a run page, rendered from the run page's context."""
    try:
        module = environment().get_template("_run.html.j2").make_module(context)
        return {name: str(getattr(module, f"section_{name}")()) for name in RUN_SECTIONS}
    except TemplateError as e:
        raise TemplateRenderError(f"dashboard template '_run.html.j2' failed: {e}") from e
