"""Markdown boards: a state listener on the engine, and the way people's edits come back.

Lives here: rendering boards, EXECUTE_NOW files and the TEAM_COORDINATION status block
(registered as the ``boards`` listener under ``coord.listeners``), three-way merges with
people's edits, parsing edits back, ``board sync`` and ``watch``.

May import: the engine and everything below it. Must not import the CLI.
"""
