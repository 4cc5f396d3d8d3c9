"""The `coord` command line: the composition root, one module per command group.

A command parses its arguments, calls one engine or boards function and reports
through :mod:`coordinator.cli.console`. May import every package; nothing imports it
(except ``python -m coordinator``). Engine imports sit inside the commands that need
them so that ``coord --help`` starts fast.
"""
