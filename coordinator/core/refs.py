"""``${…}`` references in plans: what they may name, and filling them in.

- ``${name}``: a plan parameter (or ``${item}`` in a task with ``foreach``), filled in when
  the plan loads;
- ``${task.metric}``: a metric an upstream task reported, filled in when the task starts
  (a list, in item order, when ``task`` fanned out);
- ``$${…}``: a literal ``${…}`` (for the shell's own variables: ``$${HOME}``).

In a command string every filled-in value is shell-quoted; in a command list each
argument is filled in as is. A string that is exactly one reference keeps the value's
type (a list stays a list), so ``with: {agents: "${agents}"}`` passes a list.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from typing import Any

_ANY = re.compile(r"\$\$\{|\$\{([^}]*)\}")
PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
UPSTREAM = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_\-]*)\.([A-Za-z_][A-Za-z0-9_]*)")


class Missing:
    """What a lookup returns for a reference it cannot fill (yet)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()
Lookup = Callable[[str], Any]
"""A reference's text (``agents``, ``pilot.shards``) → its value, or :data:`MISSING`."""


def references(value: Any) -> Iterator[str]:
    """Every reference's text in ``value`` (strings, nested in lists and mappings), escapes left out."""
    if isinstance(value, str):
        for m in _ANY.finditer(value):
            if m.group(1) is not None:
                yield m.group(1)
    elif isinstance(value, dict):
        for v in value.values():
            yield from references(v)
    elif isinstance(value, list):
        for v in value:
            yield from references(v)


def problem(ref: str) -> str | None:
    """Why ``${ref}`` is not a reference at all (None for ``name`` and ``task.metric``)."""
    if PARAM.fullmatch(ref) or UPSTREAM.fullmatch(ref):
        return None
    return (f"${{{ref}}} is not a reference: use ${{name}} for a plan parameter, ${{task.metric}} for an "
            "upstream task's metric, or $${…} for a literal ${…}")


def text_of(value: Any) -> str:
    """How a value reads inside a string: scalars as themselves, lists and mappings as JSON."""
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fill(value: Any, lookup: Lookup, *, quote: bool = False, final: bool = False) -> Any:
    """``value`` with every reference ``lookup`` knows filled in.

    ``quote``: shell-quote what is filled into a string (a command run by the shell).
    ``final``: the last pass — ``$${`` becomes ``${``; before it, escapes stay for later passes.
    References ``lookup`` answers :data:`MISSING` for stay as they are.
    """
    if isinstance(value, str):
        whole = _ANY.fullmatch(value)
        if whole and whole.group(1) is not None and not quote:
            found = lookup(whole.group(1))
            return value if found is MISSING else found

        def one(m: re.Match[str]) -> str:
            if m.group(1) is None:
                return "${" if final else m.group(0)
            found = lookup(m.group(1))
            if found is MISSING:
                return m.group(0)
            text = text_of(found)
            return shlex.quote(text) if quote else text

        return _ANY.sub(one, value)
    if isinstance(value, dict):
        return {k: fill(v, lookup, quote=quote, final=final) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, lookup, quote=quote, final=final) for v in value]
    return value


def fill_command(command: str | list[str], lookup: Lookup, *, final: bool = False) -> str | list[str]:
    """A command with references filled in: shell-quoted in a string, verbatim per list argument."""
    if isinstance(command, str):
        return str(fill(command, lookup, quote=True, final=final))
    return [text_of(a) if not isinstance(a, str) else a
            for a in (fill(arg, lookup, final=final) for arg in command)]
