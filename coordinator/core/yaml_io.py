"""The one module that talks to the YAML library.

Loads YAML into plain Python data and remembers the line of every mapping key
and sequence item, so validation errors can point at ``file:line``. Anchors,
aliases and ``<<`` merge keys work as YAML 1.1 defines them (explicit keys win
over merged ones); a key merged from an anchor is located at the anchor's line.
"""

from __future__ import annotations

import math
import re
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


MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_TEXT_BYTES = 10_000_000
"""A YAML file larger than this is refused before parsing."""
MAX_NODES = 1_000_000
"""Values a document may expand to, aliases included (a few aliases of aliases can reach billions)."""


class _Budget:
    """Counts the values built, so alias expansion stays bounded."""

    def __init__(self) -> None:
        self.left = MAX_NODES

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise ConfigError(f"the document expands to more than {MAX_NODES:,} values (aliases of aliases?); "
                              "coord refuses to build it", line=node.start_mark.line + 1)


def _pairs(node: yaml.MappingNode, loader: Any, seen: frozenset[int]) -> list[tuple[yaml.Node, yaml.Node, bool]]:
    """The mapping's (key, value, explicit) pairs with ``<<`` merge keys expanded.

    Explicit keys come first and win; merged keys follow in the YAML order of precedence
    (in ``<<: [*a, *b]`` the earlier mapping wins), so a plan may override what it merges.
    """
    explicit: list[tuple[yaml.Node, yaml.Node, bool]] = []
    merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
    for key_node, value_node in node.value:
        if key_node.tag != MERGE_TAG:
            explicit.append((key_node, value_node, True))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise ConfigError("a merge key '<<' takes a mapping or a list of mappings (an alias like *defaults)",
                                  line=source.start_mark.line + 1)
            if id(source) in seen:
                raise ConfigError("an anchor merges itself", line=source.start_mark.line + 1)
            merged += [(k, v, False) for k, v, _ in _pairs(source, loader, seen | {id(source)})]
    return explicit + merged


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], loader: Any, budget: _Budget,
           seen: frozenset[int] = frozenset()) -> Any:
    budget.spend(node)
    if node.tag.startswith("tag:yaml.org,2002:python/"):
        raise ConfigError(f"the tag !!{node.tag.removeprefix('tag:yaml.org,2002:')} is not allowed: coord reads plain "
                          "YAML data and never builds Python objects from a file", line=node.start_mark.line + 1,
                          path=_fmt(loc) or None)
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in seen:
            raise ConfigError("an alias refers to the mapping or list that contains it",
                              line=node.start_mark.line + 1, path=_fmt(loc) or None)
        seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node, explicit in _pairs(node, loader, seen):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise ConfigError(f"mapping key must be a scalar, got {type(key).__name__}",
                                  line=key_node.start_mark.line + 1)
            if key in out:
                if not explicit:  # a merged key the mapping (or an earlier merge) already set
                    continue
                raise ConfigError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1,
                                  path=_fmt(loc + (str(key),)))
            child = loc + (key if isinstance(key, str | int) else str(key),)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, lines, loader, budget, seen)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), lines, loader, budget, seen) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{node.value!r} is not a finite number: coord stores plans and settings as JSON, "
                          "which has no infinity or NaN (write a large number such as 1.0e+300 instead)",
                          line=node.start_mark.line + 1, path=_fmt(loc) or None)
    return value


def _fmt(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


format_loc = _fmt


def load_located(text: str, file: str) -> Located:
    """Parse YAML text; syntax errors become :class:`ConfigError` with the line."""
    if len(text) > MAX_TEXT_BYTES:
        raise ConfigError(f"file is {len(text):,} characters; a plan or settings file is at most "
                          f"{MAX_TEXT_BYTES:,}", file=file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Located(None, {}, file)
        lines: dict[Loc, int] = {}
        data = _build(node, (), lines, loader, _Budget())
        return Located(data, lines, file)
    except ConfigError as e:
        e.file = file
        raise ConfigError(e.message, file=file, path=e.path, line=e.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        msg = f"YAML syntax error: {e.problem or e}"
        if mark is not None and e.problem == "found undefined alias":  # libyaml leaves the name out
            alias = re.match(r"\*([^\s,\]}]+)", text.splitlines()[mark.line][mark.column:] if text else "")
            msg += f" {alias.group(1)!r} (define it with &{alias.group(1)} before using it)" if alias else ""
        if e.context:
            msg += f" ({e.context})"
        raise ConfigError(msg, file=file, line=line) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"YAML error: {e}", file=file) from None
    finally:
        loader.dispose()


def read_yaml_text(path: Path) -> str:
    """A YAML file's text; :class:`ConfigError` with the line of the first byte that is not UTF-8."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror}", file=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"not valid UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8",
                          file=str(path), line=line) from None


def load_file(path: Path) -> Located:
    """Read and parse a YAML file."""
    return load_located(read_yaml_text(path), str(path))


def dump(data: Any) -> str:
    """Serialize data as block-style YAML (key order kept)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
