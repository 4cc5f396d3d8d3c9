"""Cross-agent compatibility matrix: how much each agent learns from another's examples.

A matrix is square over a list of agents. ``weight(target, source)`` in [0, 1] is the
training weight a *target* agent gives to examples written for a *source* agent:
1.0 on the diagonal (an agent's own examples), 0 for pairs that are not used.

File format (YAML)::

    agents: [qa, support, legal]
    roles:                      # optional one-line role descriptions, used in prompts
      qa: a QA engineer who designs tests
    weights:                    # target -> source -> weight
      qa: {support: 0.6, legal: 0.3}
      support: {qa: 0.6}

``weights`` may also be a list of rows in ``agents`` order (``[[1.0, 0.6], [0.6, 1.0]]``),
which must then be exactly n × n. In the mapping form a missing pair means 0 (not used)
and a missing diagonal entry means 1.0; a diagonal entry other than 1.0 is an error.
Every error names the file and the key path, e.g. ``weights.qa.legal: 1.4 is outside [0, 1]``.

Built-in default (:func:`default_matrix`): pairs of week2 agents take their weight from
``pipeline/data/week2_compatibility.yaml``; any other pair gets a *generated* weight,
``round(0.2 + 0.6 * u, 2)`` where ``u`` in [0, 1) is the first 8 bytes of
``blake2b("coord.compat.v1|" + a + "|" + b)`` over the two names in sorted order. So it is
symmetric, stable across runs and machines, and always inside the 0.2–0.8 band.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coordinator.core.errors import InputError, ParameterError

WEEK2_MATRIX_PATH = Path(__file__).with_name("data") / "week2_compatibility.yaml"
"""The built-in matrix for the week2 agents (qa, support, legal, analyst, content)."""

AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""Agent names become file names, so they are restricted to a safe alphabet."""

GENERATED_MIN, GENERATED_MAX = 0.2, 0.8
_GENERATED_SALT = "coord.compat.v1"


@dataclass(frozen=True)
class CompatibilityMatrix:
    """A validated square matrix of training weights over ``agents``."""

    agents: tuple[str, ...]
    """Agent names, in the order they were declared."""
    weights: Mapping[str, Mapping[str, float]]
    """``weights[target][source]``: dense, every pair present, diagonal 1.0."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """Optional one-line role description per agent (used to word system prompts)."""
    origin: str = "<memory>"
    """Where the matrix came from (a file path or ``generated``), for messages."""

    def weight(self, target: str, source: str) -> float:
        """Training weight of ``source``'s examples for ``target`` (0 when unused)."""
        self._require(target)
        self._require(source)
        return self.weights[target][source]

    def sources(self, target: str) -> list[tuple[str, float]]:
        """``(source, weight)`` pairs with a positive weight for ``target``, in agent order."""
        self._require(target)
        return [(s, w) for s, w in self.weights[target].items() if w > 0]

    def pairs_used(self) -> int:
        """Number of (target, source) pairs with a positive weight, diagonal included."""
        return sum(1 for t in self.agents for _ in self.sources(t))

    def role(self, agent: str) -> str:
        """The agent's role description, or a neutral one when none was given."""
        return self.roles.get(agent) or f"the specialist for {agent} tasks"

    def restrict(self, agents: Sequence[str]) -> CompatibilityMatrix:
        """The sub-matrix over ``agents`` (all must be known), in the given order."""
        unknown = [a for a in agents if a not in self.weights]
        if unknown:
            raise ParameterError(f"agents {unknown!r} are not in the compatibility matrix "
                                 f"{self.origin!r} (it has {list(self.agents)!r})")
        sub = {t: {s: self.weights[t][s] for s in agents} for t in agents}
        return CompatibilityMatrix(tuple(agents), sub, {a: r for a, r in self.roles.items()
                                                        if a in sub}, self.origin)

    def to_dict(self) -> dict[str, Any]:
        """Plain form (loadable by :func:`parse_matrix`), e.g. to hash or save."""
        return {"agents": list(self.agents), "roles": dict(self.roles),
                "weights": {t: dict(self.weights[t]) for t in self.agents}}

    def _require(self, agent: str) -> None:
        if agent not in self.weights:
            raise ParameterError(f"unknown agent {agent!r} in compatibility matrix {self.origin!r}")


def load_matrix(path: Path) -> CompatibilityMatrix:
    """Read and validate a compatibility YAML file."""
    path = Path(path)
    if not path.exists():
        raise InputError("compatibility file not found", path=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(f"invalid YAML: {e}", path=path, line=line) from e
    return parse_matrix(data, origin=str(path))


def parse_matrix(data: Any, *, origin: str = "<memory>") -> CompatibilityMatrix:
    """Validate already-parsed YAML/JSON data into a matrix; errors name ``origin`` and the key."""

    def fail(key: str, message: str) -> InputError:
        return InputError(message, path=origin, field=key)

    if not isinstance(data, Mapping):
        raise fail("<root>", "expected a mapping with 'agents' and 'weights'")
    extra = sorted(set(data) - {"agents", "weights", "roles", "schema_version"})
    if extra:
        raise fail(str(extra[0]), "unknown key (expected agents, weights, roles)")
    agents = _parse_agents(data.get("agents"), fail)
    known = set(agents)
    raw = data.get("weights")
    if raw is None:
        raise fail("weights", "missing")
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        raw = _rows_to_mapping(raw, agents, fail)
    if not isinstance(raw, Mapping):
        raise fail("weights", "expected a mapping target -> {source: weight} or a list of rows")
    dense = {t: {s: (1.0 if s == t else 0.0) for s in agents} for t in agents}
    for target, row in raw.items():
        if target not in known:
            raise fail(f"weights.{target}", f"unknown agent {target!r} (agents: {agents!r})")
        if row is None:
            continue
        if not isinstance(row, Mapping):
            raise fail(f"weights.{target}", "expected a mapping source -> weight")
        for source, value in row.items():
            key = f"weights.{target}.{source}"
            if source not in known:
                raise fail(key, f"unknown agent {source!r} (agents: {agents!r})")
            dense[target][source] = _parse_weight(value, key, target == source, fail)
    roles = _parse_roles(data.get("roles"), known, fail)
    return CompatibilityMatrix(tuple(agents), dense, roles, origin)


def _parse_agents(value: Any, fail: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise fail("agents", "expected a non-empty list of agent names")
    seen: set[str] = set()
    for i, name in enumerate(value):
        if not isinstance(name, str) or not AGENT_NAME.match(name):
            raise fail(f"agents[{i}]", f"invalid agent name {name!r} (letters, digits, _ . -)")
        if name in seen:
            raise fail(f"agents[{i}]", f"duplicate agent {name!r}")
        seen.add(name)
    return list(value)


def _rows_to_mapping(rows: Sequence[Any], agents: list[str], fail: Any) -> dict[str, Any]:
    n = len(agents)
    if len(rows) != n:
        raise fail("weights", f"matrix is not square: {len(rows)} rows for {n} agents")
    out: dict[str, Any] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != n:
            size = len(row) if isinstance(row, Sequence) else "no"
            raise fail(f"weights[{i}]", f"matrix is not square: row has {size} columns, "
                                        f"expected {n}")
        out[agents[i]] = dict(zip(agents, row, strict=True))
    return out


def _parse_weight(value: Any, key: str, diagonal: bool, fail: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(key, f"{value!r} is not a number")
    w = float(value)
    if math.isnan(w) or not 0.0 <= w <= 1.0:
        raise fail(key, f"{value!r} is outside [0, 1]")
    if diagonal and w != 1.0:
        raise fail(key, f"{value!r} on the diagonal; an agent's own examples weigh 1.0")
    return w


def _parse_roles(value: Any, known: set[str], fail: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail("roles", "expected a mapping agent -> description")
    roles: dict[str, str] = {}
    for agent, text in value.items():
        if agent not in known:
            raise fail(f"roles.{agent}", f"unknown agent {agent!r}")
        if not isinstance(text, str) or not text.strip():
            raise fail(f"roles.{agent}", "expected a non-empty string")
        roles[agent] = " ".join(text.split())
    return roles


def generated_weight(target: str, source: str) -> float:
    """Stable weight in [0.2, 0.8] for a pair of distinct agents (1.0 on the diagonal)."""
    if target == source:
        return 1.0
    a, b = sorted((target, source))
    digest = hashlib.blake2b(f"{_GENERATED_SALT}|{a}|{b}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    return round(GENERATED_MIN + (GENERATED_MAX - GENERATED_MIN) * u, 2)


def week2_matrix() -> CompatibilityMatrix:
    """The built-in week2 matrix shipped with the package."""
    return load_matrix(WEEK2_MATRIX_PATH)


def default_matrix(agents: Iterable[str]) -> CompatibilityMatrix:
    """Built-in matrix for any agent list: week2 weights where known, generated elsewhere."""
    names = list(agents)
    if not names:
        raise ParameterError("default_matrix needs at least one agent")
    parse_matrix({"agents": names, "weights": {}}, origin="<agents>")  # validates names
    week2 = week2_matrix()
    dense: dict[str, dict[str, float]] = {}
    for t in names:
        dense[t] = {}
        for s in names:
            if t in week2.weights and s in week2.weights:
                dense[t][s] = week2.weights[t][s]
            else:
                dense[t][s] = generated_weight(t, s)
    roles = {a: r for a, r in week2.roles.items() if a in dense}
    return CompatibilityMatrix(tuple(names), dense, roles, "built-in default")


def resolve_matrix(agents: Sequence[str], path: Path | None) -> CompatibilityMatrix:
    """The matrix a step uses: the file at ``path`` restricted to ``agents``, or the default."""
    if path is None:
        return default_matrix(agents)
    return load_matrix(path).restrict(agents)
