"""A role as resolved for one run: who plays it and through which driver."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.core.plan import DriverName, RoleBinding

AGENT_BOARD_NAMES = {"claude": "CLAUDE", "codex": "CODEX", "cursor": "CURSOR", "human": "HUMAN"}


def board_name_of(agent: str) -> str:
    """Prefix of the board files of the role an agent plays, e.g. ``CLAUDE`` for CLAUDE_TASKS.md."""
    return AGENT_BOARD_NAMES.get(agent, agent.upper())


@dataclass(frozen=True)
class RoleDefinition:
    """A role as resolved for one run."""

    name: str
    """lead, quality, execution, or a plan-defined role."""
    agent: str
    """Who plays it: claude, codex, cursor, human, …"""
    driver: DriverName
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
    """cli driver: permission mode / sandbox (see :class:`coordinator.core.plan.RoleBinding`)."""
    binding: RoleBinding | None = None
    """The full binding (provider, base_url, … for the llm driver)."""

    @property
    def provider(self) -> str | None:
        """The LLM provider bound to this role, if any."""
        return self.binding.provider if self.binding is not None else None

    @property
    def board_name(self) -> str:
        """Prefix of the role's board files, e.g. ``CLAUDE`` for CLAUDE_TASKS.md."""
        return board_name_of(self.agent)
