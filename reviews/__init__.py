"""The gate library: what a review gate measures and records.

Lives here: criteria (metric, file, command, claims and reviewer-model checks; file
validators come from the ``coord.validators`` registry), claims parsing, the evidence
a reviewer model reads, the reviewer model itself, gate verdicts, the decision inbox
and review records.

May import: coordinator.core, templates, roles.providers. Must not import roles,
pipeline, the engine, task_boards or the CLI.
"""
