"""The ``cli`` driver: coding-agent CLIs (Claude Code, Codex, Cursor) in git worktrees.

Public surface: :class:`CliDriver` (registered as driver ``cli``). Its
``after_gates`` hook, which the engine calls for every driver in use once gates
decide, merges a reviewed branch only after its gates approve.
"""

from __future__ import annotations

from roles.drivers.cli._driver import DEFAULT_TIMEOUT_S, CliDriver
from roles.drivers.cli._flavors import FLAVORS, AgentReply, CliSettings
from roles.drivers.cli._merge import merge_reviewed

__all__ = ["DEFAULT_TIMEOUT_S", "FLAVORS", "AgentReply", "CliDriver", "CliSettings", "merge_reviewed"]
