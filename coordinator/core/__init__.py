"""The foundation every other package builds on.

Lives here: the error hierarchy (one root), atomic io, YAML with locations, the event
log, the workspace layout, the plan model, the typed run state, grading, LLM call
records, the run store, the ports plugins implement (drivers, validators, state
listeners), the registries that find them, and the public step API.

May import: only the standard library and third-party packages. Must not import any
other package of coord (templates, roles, reviews, pipeline, the engine, boards, CLI).
The contract is checked by ``python -m tests.layers``.
"""
