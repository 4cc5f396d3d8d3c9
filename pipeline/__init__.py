"""The week2 pipeline steps and their data, registered like any team's own steps.

Lives here: generate → to_adp → build_sft → validate_openai → audit → scrub_pii /
rebalance → finetune → benchmark → report (each registered under ``coord.steps``), the
``adp`` and ``openai`` file validators (``coord.validators``), the offline example
corpus and price tables under ``pipeline/data/``. Steps use only the public step API
(``from coordinator import step, StepContext, StepResult``) and are plain functions
over files that libraries can call too.

May import: coordinator.core, templates, roles.providers, reviews. Must not import
roles (a sibling plugin package), the engine, task_boards or the CLI.
"""
