"""coord: coordinate a team of AI agents through a checkpointed, reviewable pipeline."""

__version__ = "0.1.0"
