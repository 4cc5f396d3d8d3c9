"""Imports every built-in step module so that each registers itself."""

from __future__ import annotations

import importlib

BUILTIN_STEP_MODULES = (
    "pipeline.generate",
    "pipeline.to_adp",
    "pipeline.sft",
    "pipeline.openai_format",
    "pipeline.audit",
    "pipeline.scrub",
    "pipeline.rebalance",
    "pipeline.finetune",
    "pipeline.benchmark",
    "pipeline.report",
)

for _name in BUILTIN_STEP_MODULES:
    importlib.import_module(_name)
