"""Charts of the dashboard, drawn on the server by matplotlib as inline SVG (no JavaScript library).

matplotlib is imported inside the drawing functions: only the dashboard pays for loading it,
never the CLI. Drawing goes through the object API (``Figure``, no pyplot state) under one lock,
because the rc settings it draws with are process-wide.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_LOCK = threading.Lock()
_RC: Any = {"svg.fonttype": "none", "svg.hashsalt": "coord", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False, "axes.titlesize": 10, "axes.titleweight": "bold",
       "font.family": ["DejaVu Sans", "sans-serif"]}
"""Text stays text in the SVG; ids are stable, so an unchanged chart renders to the same bytes."""
PALETTE = ("#2f6fb0", "#d9822b", "#3a9a5b", "#b8465a", "#7a5cb0", "#8c6d3f", "#c25fa8", "#6b7480",
           "#a7a63a", "#2aa1b3")


@dataclass(frozen=True)
class Series:
    """Cumulative spend of one group (a role or a model) over time."""

    name: str
    times: list[datetime]
    usd: list[float]
    """Cumulative USD after each call at ``times``."""
    total: bool = False
    """The run's total (drawn dark and dashed, under the groups)."""


@dataclass(frozen=True)
class Alert:
    """A budget alert: when spend crossed a share of the limit."""

    at: datetime
    threshold: float
    spent_usd: float


@dataclass(frozen=True)
class Accuracy:
    """One agent's (or the pooled) benchmark result."""

    name: str
    n: int
    baseline: float
    baseline_ci: tuple[float, float]
    candidate: float
    candidate_ci: tuple[float, float]


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # scale with the page: drop the fixed size, keep the viewBox
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img"', text, count=1)


def spend_chart(series: Sequence[Series], *, title: str, limit_usd: float | None,
                thresholds: Sequence[float], alerts: Sequence[Alert]) -> str:
    """Cumulative spend per group as step lines, with the budget line, its alert levels and the alerts."""
    # optional heavy import: only the dashboard draws charts, and only when a page asks for one
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure
    from matplotlib.rcsetup import cycler

    with _LOCK:
        import matplotlib  # the rc context is process-wide: held under the lock

        rc: Any = {**_RC, "axes.prop_cycle": cycler(color=PALETTE)}
        with matplotlib.rc_context(rc):
            fig = Figure(figsize=(7.2, 3.2))
            ax = fig.add_subplot()
            top = 0.0
            for s in series:
                style = {"color": "#1d232b", "linestyle": "--", "linewidth": 1.3} if s.total else {"linewidth": 1.8}
                times = date2num([s.times[0], *s.times])
                (line,) = ax.step(times, [0.0, *s.usd], where="post", label=s.name, **style)
                ax.plot(times[-1:], s.usd[-1:], "o", markersize=3, color=line.get_color())
                top = max(top, s.usd[-1])
            if limit_usd is not None:
                ax.axhline(limit_usd, color="#b8465a", linewidth=1.4, label=f"budget ${limit_usd:,.2f}")
                for t in thresholds:
                    ax.axhline(limit_usd * t, color="#b8465a", linewidth=0.8, linestyle=":", alpha=0.8)
                    ax.annotate(f"{t:.0%}", (1.0, limit_usd * t), xycoords=("axes fraction", "data"),
                                xytext=(2, 0), textcoords="offset points", va="center", fontsize=7,
                                color="#b8465a")
                top = max(top, limit_usd)
            for a in alerts:
                at = float(date2num(a.at))
                ax.plot([at], [a.spent_usd], marker="v", color="#b8465a", markersize=7, linestyle="none")
                ax.annotate(f"alert {a.threshold:.0%}", (at, a.spent_usd), xytext=(4, 6),
                            textcoords="offset points", fontsize=7, color="#b8465a")
            ax.set_ylim(0, top * 1.12 if top > 0 else 1)
            locator = AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
            ax.yaxis.set_major_formatter(lambda v, _pos: f"${v:,.2f}")
            ax.set_title(title, loc="left")
            ax.set_ylabel("spent (USD, cumulative)")
            ax.grid(axis="y", linewidth=0.5, alpha=0.5)
            ax.legend(loc="upper left", frameon=False, fontsize=8)
            return _svg(fig)


def accuracy_chart(rows: Sequence[Accuracy], *, confidence: float) -> str:
    """Accuracy of the baseline and the fine-tuned model per agent, with their Wilson intervals."""
    # optional heavy import: only the dashboard draws charts, and only when a page asks for one
    from matplotlib.figure import Figure

    with _LOCK:
        import matplotlib  # the rc context is process-wide: held under the lock

        with matplotlib.rc_context(_RC):
            fig = Figure(figsize=(7.2, 3.4))
            ax = fig.add_subplot()
            xs = range(len(rows))
            width = 0.38
            for offset, label, color, value, ci in (
                    (-width / 2, "baseline", "#8a94a3", lambda r: r.baseline, lambda r: r.baseline_ci),
                    (width / 2, "fine-tuned", "#2f6fb0", lambda r: r.candidate, lambda r: r.candidate_ci)):
                vals = [value(r) for r in rows]
                lows = [max(0.0, v - ci(r)[0]) for v, r in zip(vals, rows, strict=True)]
                highs = [max(0.0, ci(r)[1] - v) for v, r in zip(vals, rows, strict=True)]
                bars = ax.bar([x + offset for x in xs], vals, width, label=label, color=color,
                              yerr=[lows, highs], capsize=3, error_kw={"linewidth": 1, "ecolor": "#333"})
                ax.bar_label(bars, labels=[f"{v:.0%}" for v in vals], padding=2, fontsize=7)
            ax.set_xticks(list(xs), [f"{r.name}\nn={r.n}" for r in rows])
            ax.set_ylim(0, 1.08)
            ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
            ax.set_ylabel("accuracy")
            ax.set_title(f"Accuracy per agent, with {confidence:.0%} Wilson intervals", loc="left")
            ax.grid(axis="y", linewidth=0.5, alpha=0.5)
            ax.legend(loc="upper left", frameon=False, fontsize=8, ncols=2)
            return _svg(fig)
