"""`python -m coordinator` runs the CLI."""

from coordinator.cli.app import main

main()
