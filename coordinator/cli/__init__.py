"""The `coord` command line: one module per command group."""
