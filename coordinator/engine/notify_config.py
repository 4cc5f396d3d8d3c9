"""``notify:`` in a workspace's ``coord.yaml``: where notifications go and which ones.

::

    notify:
      grace_s: 2                      # how long the end of a run waits for deliveries (default 2)
      targets:
        - name: team-chat             # optional; shown in the event log instead of the URL
          webhook: https://hooks.slack.com/services/${SLACK_HOOK}
          format: slack               # json (default) or slack
          headers: {Authorization: "Bearer ${NOTIFY_TOKEN}"}
          when: [gate_waiting, run_failed, budget_hold]   # default: every kind
          timeout_s: 5                # per attempt (default 5)
          retries: 3                  # attempts after the first (default 3)
        - desktop: true               # notify-send when it is on PATH, else the terminal bell

``${NAME}`` in a webhook URL or a header is read from the environment when the run starts; its
value, and every header value, is registered as a secret (:mod:`roles.providers.redact`), so no
board, log, event or report shows it. Every problem is a :class:`ConfigError` naming
``coord.yaml:line → notify.…``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from coordinator.core.errors import ConfigError, UsageError, UsageErrors
from coordinator.core.workspace import Workspace
from coordinator.core.yaml_io import Loc, Located, format_loc, load_file
from roles.providers.redact import register

NoticeKind = Literal["gate_waiting", "budget_alert", "budget_hold", "run_finished", "run_failed", "accept_failed"]
NOTICE_KINDS: tuple[NoticeKind, ...] = get_args(NoticeKind)
Format = Literal["json", "slack"]
DEFAULT_GRACE_S = 2.0
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 3
MAX_RETRIES = 10
MAX_TIMEOUT_S = 60.0
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TARGET_KEYS = {"name", "webhook", "desktop", "format", "headers", "when", "timeout_s", "retries"}


@dataclass(frozen=True)
class Target:
    """One place notifications go."""

    name: str
    """How the event log names it (never its URL, which may hold a secret)."""
    kind: Literal["webhook", "desktop"]
    url: str | None
    """The webhook's URL with ``${…}`` filled in (None for the desktop)."""
    format: Format
    """``json``: coord's own document; ``slack``: an incoming-webhook message (``text`` and ``blocks``)."""
    headers: Mapping[str, str]
    when: frozenset[NoticeKind]
    """The kinds of notification this target gets (``when:``; YAML reads a bare ``on`` as true)."""
    timeout_s: float
    """Per attempt: connecting, sending and waiting for the answer each give up after this long."""
    retries: int
    """Attempts after the first when one fails (a network error, a timeout, 5xx, 408 or 429)."""


@dataclass(frozen=True)
class NotifyConfig:
    """The workspace's notification targets."""

    targets: tuple[Target, ...]
    grace_s: float = DEFAULT_GRACE_S
    """How long the end of a run waits for deliveries still under way; what is left is logged as dropped."""


class _Reader:
    """Reads ``notify:`` and collects every problem with its line."""

    def __init__(self, located: Located, env: Mapping[str, str]) -> None:
        self.located = located
        self.env = env
        self.errors: list[UsageError] = []
        self.secrets: list[str] = []

    def problem(self, loc: Loc, message: str) -> None:
        self.errors.append(ConfigError(message, file=self.located.file, path=format_loc(loc),
                                       line=self.located.line_of(loc)))

    def number(self, value: Any, loc: Loc, low: float, high: float, default: float) -> float:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not low < value <= high:
            self.problem(loc, f"must be a number of seconds greater than {low:g} and at most {high:g}, got {value!r}")
            return default
        return float(value)

    def filled(self, value: Any, loc: Loc) -> str | None:
        """``value`` with each ``${NAME}`` replaced by the environment's value (registered as a secret)."""
        if not isinstance(value, str) or not value:
            self.problem(loc, f"must be a non-empty string, got {value!r}")
            return None
        missing = [n for n in _ENV_REF.findall(value) if n not in self.env]
        if missing:
            self.problem(loc, f"environment variable {', '.join(missing)} is not set (it is read as ${{{missing[0]}}})")
            return None
        for name in _ENV_REF.findall(value):
            self.secrets.append(self.env[name])
        return _ENV_REF.sub(lambda m: self.env[m.group(1)], value)

    def target(self, raw: Any, i: int, names: set[str]) -> Target | None:
        loc: Loc = ("notify", "targets", i)
        if not isinstance(raw, dict):
            self.problem(loc, "each target is a mapping with `webhook: URL` or `desktop: true`")
            return None
        for key in sorted(set(raw) - _TARGET_KEYS):
            self.problem((*loc, key), f"unknown field (known: {', '.join(sorted(_TARGET_KEYS))})")
        kinds = [k for k in ("webhook", "desktop") if k in raw]
        if len(kinds) != 1:
            self.problem(loc, "give exactly one of `webhook: URL` or `desktop: true`")
            return None
        url = self.url(raw["webhook"], (*loc, "webhook")) if kinds == ["webhook"] else None
        if kinds == ["desktop"] and raw["desktop"] is not True:
            self.problem((*loc, "desktop"), f"must be true, got {raw['desktop']!r}")
        fmt = raw.get("format", "json")
        if fmt not in get_args(Format):
            self.problem((*loc, "format"), f"must be json or slack, got {fmt!r}")
        name = raw.get("name") or (f"webhook {i + 1} ({urlsplit(url).hostname})" if url else "desktop")
        if not isinstance(name, str) or name in names:
            self.problem((*loc, "name"), f"must be a string no other target has, got {name!r}")
        names.add(str(name))
        retries = raw.get("retries", DEFAULT_RETRIES)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            self.problem((*loc, "retries"), f"must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
            retries = DEFAULT_RETRIES
        return Target(name=str(name), kind="webhook" if kinds == ["webhook"] else "desktop", url=url, format=fmt if fmt in get_args(Format) else "json",
                      headers=self.headers(raw.get("headers"), (*loc, "headers")),
                      when=self.kinds(raw.get("when"), (*loc, "when")),
                      timeout_s=self.number(raw.get("timeout_s"), (*loc, "timeout_s"), 0, MAX_TIMEOUT_S,
                                            DEFAULT_TIMEOUT_S), retries=retries)

    def url(self, value: Any, loc: Loc) -> str | None:
        url = self.filled(value, loc)
        if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
            self.problem(loc, "must be an http:// or https:// URL")
            return None
        return url

    def headers(self, value: Any, loc: Loc) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(loc, "must be a mapping of header name → value")
            return {}
        out = {}
        for key, raw in value.items():
            filled = self.filled(raw, (*loc, str(key)))
            if filled is not None:
                self.secrets.append(filled)  # a header usually carries a credential
                out[str(key)] = filled
        return out

    def kinds(self, value: Any, loc: Loc) -> frozenset[NoticeKind]:
        if value is None:
            return frozenset(NOTICE_KINDS)
        if not isinstance(value, list) or not value:
            self.problem(loc, f"must be a non-empty list of: {', '.join(NOTICE_KINDS)}")
            return frozenset()
        for n, kind in enumerate(value):
            if kind not in NOTICE_KINDS:
                self.problem((*loc, n), f"unknown kind {kind!r} (known: {', '.join(NOTICE_KINDS)})")
        return frozenset(k for k in value if k in NOTICE_KINDS)


def read_notify(located: Located, env: Mapping[str, str] | None = None) -> NotifyConfig | None:
    """The ``notify:`` section of parsed settings (None when there is none); every problem at once."""
    data = located.data if isinstance(located.data, dict) else {}
    section = data.get("notify")
    if section is None:
        return None
    reader = _Reader(located, os.environ if env is None else env)
    if not isinstance(section, dict) or not isinstance(section.get("targets"), list) or not section["targets"]:
        reader.problem(("notify",), "must be a mapping with `targets:`, a list of `webhook: URL` or "
                                    "`desktop: true` entries (see docs/notifications.md)")
        UsageErrors.raise_if_any(reader.errors)
    for key in sorted(set(section) - {"targets", "grace_s"}):
        reader.problem(("notify", key), "unknown field (known: grace_s, targets)")
    grace = reader.number(section.get("grace_s"), ("notify", "grace_s"), 0, MAX_TIMEOUT_S, DEFAULT_GRACE_S)
    names: set[str] = set()
    targets = [reader.target(raw, i, names) for i, raw in enumerate(section["targets"])]
    UsageErrors.raise_if_any(reader.errors)
    for secret in reader.secrets:
        register(secret)
    return NotifyConfig(tuple(t for t in targets if t is not None), grace)


def load_notify(ws: Workspace, env: Mapping[str, str] | None = None) -> NotifyConfig | None:
    """The workspace's notification targets from its ``coord.yaml`` (None: it has none, or no file)."""
    config: Path = ws.config
    if not config.exists():
        return None
    return read_notify(load_file(config), env)
