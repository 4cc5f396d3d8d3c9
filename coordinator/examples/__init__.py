"""Example workspaces that `coord init --example NAME` writes (plans, steps and tools of a team's own pipeline).

Each example is a directory here; its files are copied as they are. They use only the public
API (``from coordinator import step, StepContext, ...``), exactly as a team's own code would.
"""
