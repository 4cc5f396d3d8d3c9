"""File validators of the pipeline's formats, registered under ``coord.validators``.

A gate's file check names one (``{file: data/adp, validator: adp}``); each takes
a path and answers (passed, detail).
"""

from __future__ import annotations

from pathlib import Path

from coordinator.core.errors import STEP_FAULTS
from coordinator.core.ports import ValidatorResult
from pipeline.adp.validate import validate_adp_file
from pipeline.openai_format import validate_openai_file


def adp(path: Path) -> ValidatorResult:
    """Every trajectory in the file is valid Agent Data Protocol."""
    try:
        report = validate_adp_file(path, max_errors=3)
    except STEP_FAULTS as e:
        return False, str(e)
    if not report.ok:
        return False, (f"{report.invalid} of {report.trajectories} trajectories invalid; first: {report.errors[0]}"
                       if report.errors else f"{report.invalid} invalid trajectories")
    return True, f"{report.trajectories} valid ADP trajectories"


def openai(path: Path) -> ValidatorResult:
    """Every line is a valid OpenAI chat fine-tuning example."""
    report = validate_openai_file(path, max_samples=3)
    if not report.valid:
        first = report.error_samples[0] if report.error_samples else None
        return False, f"{report.errors} errors" + (f"; first: line {first.line} {first.field}: {first.message}"
                                                    if first else "")
    return True, f"{report.examples} valid OpenAI chat examples"
