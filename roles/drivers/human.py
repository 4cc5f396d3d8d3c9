"""The ``human`` driver: a person does the task and ticks it on their board.

Nothing runs: the task is handed over and waits (the run pauses with exit code 3
once nothing else can start). The person ticks it on their board
(``task_boards/<AGENT>_TASKS.md``); ``coord watch`` or ``coord board sync`` applies
the tick, runs the task's accept checks and the run goes on.
"""

from __future__ import annotations

from coordinator.core.plan import CompiledTask
from coordinator.core.ports import DriverContext, DriverTraits, TaskOutcome
from coordinator.core.state import PERSON_HOLD


class HumanDriver:
    """Hands an assignment to a person."""

    name = "human"
    traits = DriverTraits()

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Leave the task waiting for a tick on the board of the role's agent."""
        board = f"task_boards/{ctx.role.board_name}_TASKS.md"
        handed = f"handed to {ctx.role.agent}: tick it on {board} when it is done"
        # held, not failed: the run says who has it and what continues it
        return TaskOutcome(status="waiting", notes=[handed], held_by=PERSON_HOLD,
                           error=f"{handed}, then `coord board sync` (or keep `coord watch` running)")
