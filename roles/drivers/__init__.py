"""Drivers by name. New drivers (llm, cli, human) register here; the graph never changes."""

from __future__ import annotations

from collections.abc import Callable

from coordinator.core.ports import Driver
from roles.drivers.cli import CliDriver
from roles.drivers.human import HumanDriver
from roles.drivers.llm import LLMDriver
from roles.drivers.offline import OfflineDriver
from roles.drivers.pipeline import PipelineDriver

DRIVERS: dict[str, Callable[[], Driver]] = {
    "pipeline": PipelineDriver,
    "offline": OfflineDriver,
    "llm": LLMDriver,
    "cli": CliDriver,
    "human": HumanDriver,
}


def get_driver(name: str) -> Driver:
    """A new driver instance by name."""
    return DRIVERS[name]()
