"""The built-in drivers: pipeline, offline, llm, cli and human.

Each is registered under the entry-point group ``coord.drivers`` in
``pyproject.toml`` and found through :data:`coordinator.core.ports.DRIVERS`;
nothing in the engine names one. A new driver is a module with a class that
has ``name``, ``traits = DriverTraits(...)`` and ``run(task, ctx)``, plus one
entry-point line.
"""
