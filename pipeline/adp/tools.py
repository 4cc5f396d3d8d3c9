"""Tool definitions of an ADP dataset: upstream's ``metadata.json`` (``custom_tools``).

Upstream keeps the function definitions a dataset's api_actions call in
``datasets/<name>/metadata.json`` beside its trajectories::

    {"custom_tools": [{"type": "function",
                       "function": {"name": "web_search", "description": "…",
                                    "parameters": {"type": "object", "properties": {…}}}}],
     "code_enabled": ["bash"], "browser_enabled": false}

Only ``custom_tools`` matters here (other keys are left alone). A trajectory may
narrow the set: ``available_custom_tools`` (1.5.0) or ``available_apis`` (older
versions) name the tools it had; without either, every tool of the dataset was
available, as upstream assumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.core.errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionSpec(_Strict):
    """One function definition (OpenAI's ``function`` object)."""

    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """JSON Schema of the arguments."""
    strict: bool | None = None


class ToolSpec(_Strict):
    """One ``custom_tools`` entry (OpenAI's ``tools`` item)."""

    type: Literal["function"] = "function"
    function: FunctionSpec


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    custom_tools: list[ToolSpec] = Field(default_factory=list)


class ToolCatalog:
    """The tool definitions of one dataset, by name, in the file's order."""

    def __init__(self, tools: list[ToolSpec] | None = None, source: Path | None = None) -> None:
        self.source = source
        """The metadata file read (None for an empty catalog)."""
        self._by_name: dict[str, dict[str, Any]] = {}
        for tool in tools or ():
            self._by_name.setdefault(tool.function.name, tool.model_dump(exclude_none=True))

    @classmethod
    def load(cls, path: Path) -> ToolCatalog:
        """Read an upstream ``metadata.json``; :class:`InputError` names the file and field when it is bad."""
        try:
            raw = orjson.loads(path.read_bytes())
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror or e}", path=path) from e
        except orjson.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e}", path=path) from e
        try:
            meta = _Metadata.model_validate(raw)
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            where = ".".join(str(part) for part in err["loc"]) or "(file)"
            raise InputError(f"{where}: {err['msg']}", path=path) from e
        names = [t.function.name for t in meta.custom_tools]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise InputError(f"custom_tools: duplicate tool names {dupes}", path=path)
        return cls(meta.custom_tools, path)

    def __len__(self) -> int:
        return len(self._by_name)

    def for_trajectory(self, traj: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The definitions available to one trajectory (copies, in the file's order)."""
        listed = traj.get("available_custom_tools")
        if listed is None:
            listed = traj.get("available_apis")
        names: list[str] = list(self._by_name)
        if isinstance(listed, list):
            wanted = set(listed)
            names = [n for n in names if n in wanted]
        return [orjson.loads(orjson.dumps(self._by_name[n])) for n in names]
