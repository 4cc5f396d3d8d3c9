"""The engine: the LangGraph graph and what runs inside it.

Lives here: graph wiring and nodes, the scheduler, the task pool, gate review and
decisions, the budget and its ledger, the runner (start, resume, status), the plan
loader, and reading or updating a run's checkpoint from outside.

May import: coordinator.core, templates, roles.providers, reviews, roles, pipeline —
but plugins are reached through the registries of :mod:`coordinator.core.ports` and
:mod:`coordinator.core.step`, never by name. Must not import task_boards or the CLI
(boards are a state listener the engine is told about through ``coord.listeners``).
"""
