"""The one module that talks to the YAML library.

Loads YAML into plain Python data and remembers the line of every mapping key
and sequence item, so validation errors can point at ``file:line``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from coordinator.core.errors import ConfigError

Loc = tuple[str | int, ...]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it (much faster on large plans)."""


class Located:
    """Parsed YAML data plus a ``path → line`` map."""

    def __init__(self, data: Any, lines: dict[Loc, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, loc: Loc) -> int | None:
        """Line of ``loc`` or of its nearest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], loader: Any) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise ConfigError(f"mapping key must be a scalar, got {type(key).__name__}",
                                  line=key_node.start_mark.line + 1)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1,
                                  path=_fmt(loc + (str(key),)))
            child = loc + (key if isinstance(key, str | int) else str(key),)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _fmt(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


format_loc = _fmt


def load_located(text: str, file: str) -> Located:
    """Parse YAML text; syntax errors become :class:`ConfigError` with the line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Located(None, {}, file)
        lines: dict[Loc, int] = {}
        data = _build(node, (), lines, loader)
        return Located(data, lines, file)
    except ConfigError as e:
        e.file = file
        raise ConfigError(e.message, file=file, path=e.path, line=e.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        msg = f"YAML syntax error: {e.problem or e}"
        if e.context:
            msg += f" ({e.context})"
        raise ConfigError(msg, file=file, line=line) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"YAML error: {e}", file=file) from None
    finally:
        loader.dispose()


def load_file(path: Path) -> Located:
    """Read and parse a YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror}", file=str(path)) from None
    return load_located(text, str(path))


def dump(data: Any) -> str:
    """Serialize data as block-style YAML (key order kept)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
