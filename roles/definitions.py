"""Role definitions: which agent plays a role and through which driver.

Defaults come from the plan (lead → claude, quality → codex, execution →
cursor); a workspace's ``coord.yaml`` may rebind any role.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator._yaml import load_file
from coordinator.errors import ConfigError
from coordinator.plan import RoleBinding

log = logging.getLogger(__name__)

CLI_AGENTS = ("claude", "codex", "cursor")
"""Agents the ``cli`` driver can run (Claude Code, the Codex CLI, Cursor's ``agent``)."""
AGENT_BOARD_NAMES = {"claude": "CLAUDE", "codex": "CODEX", "cursor": "CURSOR", "human": "HUMAN"}


@dataclass(frozen=True)
class RoleDefinition:
    """A role as resolved for one run."""

    name: str
    """lead, quality, execution, or a plan-defined role."""
    agent: str
    """Who plays it: claude, codex, cursor, human, …"""
    driver: str
    """How assignments reach the agent (pipeline steps always run in-process)."""
    model: str | None
    budget_usd: float | None
    driver_reason: str
    """Why this driver was chosen (shown on boards)."""
    executable: str | None = None
    """cli driver: program to run instead of the agent's usual CLI."""
    flags: tuple[str, ...] = ()
    """cli driver: extra CLI arguments."""
    permissions: str | None = None
    """cli driver: permission mode / sandbox (see :class:`coordinator.plan.RoleBinding`)."""

    @property
    def board_name(self) -> str:
        """Prefix of the role's board files, e.g. ``CLAUDE`` for CLAUDE_TASKS.md."""
        return AGENT_BOARD_NAMES.get(self.agent, self.agent.upper())


def _auto_driver(binding: RoleBinding) -> tuple[str, str]:
    # The llm / cli drivers are not available yet; the offline stand-in plays every agent.
    return "offline", "no LLM or CLI driver configured: offline stand-in"


def load_workspace_roles(config: Path) -> dict[str, dict[str, Any]]:
    """Role overrides from a workspace's ``coord.yaml`` (``roles:`` section)."""
    if not config.exists():
        return {}
    data = load_file(config).data or {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping", file=str(config))
    roles = data.get("roles") or {}
    if not isinstance(roles, dict):
        raise ConfigError("'roles' must be a mapping of role → {agent, driver, model}",
                          file=str(config), path="roles")
    return roles


def resolve_roles(plan_roles: dict[str, RoleBinding], overrides: dict[str, dict[str, Any]],
                  config_file: str = "coord.yaml") -> dict[str, RoleDefinition]:
    """Combine plan bindings with workspace overrides and pick each role's driver."""
    from roles.drivers import DRIVERS

    out: dict[str, RoleDefinition] = {}
    for name, binding in plan_roles.items():
        if name in overrides:
            try:
                binding = RoleBinding.model_validate({**binding.model_dump(), **overrides[name]})
            except ValueError as e:
                raise ConfigError(str(e).splitlines()[-1].strip(), file=config_file,
                                  path=f"roles.{name}") from None
        if binding.driver == "auto":
            driver, reason = _auto_driver(binding)
        else:
            driver, reason = binding.driver, f"set to {binding.driver!r}"
        if driver not in DRIVERS:
            raise ConfigError(f"driver {driver!r} is not available in this version "
                              f"(available: {', '.join(sorted(DRIVERS))})", file=config_file,
                              path=f"roles.{name}.driver")
        if driver == "cli" and binding.agent not in CLI_AGENTS:
            raise ConfigError(f"driver 'cli' runs {', '.join(CLI_AGENTS)}; role {name!r} is played by "
                              f"{binding.agent!r}", file=config_file, path=f"roles.{name}.agent")
        out[name] = RoleDefinition(name, binding.agent, driver, binding.model, binding.budget_usd, reason,
                                   executable=binding.executable, flags=tuple(binding.flags),
                                   permissions=binding.permissions)
    unknown = sorted(set(overrides) - set(plan_roles))
    if unknown:
        log.warning("%s defines roles the plan does not use: %s", config_file, ", ".join(unknown))
    return out
