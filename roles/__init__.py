"""Roles and the drivers that play them: plugins of the engine.

Lives here: role definitions (which agent plays a role through which driver, from the
plan and ``coord.yaml``), the built-in drivers (pipeline, offline, llm, cli, human)
registered under ``coord.drivers``, git worktrees for the cli driver, and the task view
that boards and agent prompts share. ``roles.providers`` (LLM clients) is a layer below.

May import: coordinator.core, templates, roles.providers, reviews. Must not import
pipeline (a sibling plugin package), the engine, task_boards or the CLI.
"""
