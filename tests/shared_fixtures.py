"""The team's shared fixtures (``../shared`` beside the checkout): real ADP samples.

They live outside the repository, so a user's clone usually lacks them and their tests
skip. CI clones have them beside them: ``.ci/run`` sets ``COORD_REQUIRE_SHARED=1`` there,
which turns "absent" into a failure, so a wrong path can never make those tests skip
silently.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ADP_SAMPLE_DIR = SHARED / "fixtures" / "adp"
ADP_SAMPLES = sorted(ADP_SAMPLE_DIR.glob("*.sample_std.json"))
REQUIRE_ENV = "COORD_REQUIRE_SHARED"
F = TypeVar("F", bound=Callable[..., Any])

ADP_SAMPLE_PARAMS = [pytest.param(p, id=p.name) for p in ADP_SAMPLES] or [pytest.param(None, id="samples-absent")]
"""Parametrize over the samples; without any, one case that skips (or fails when they are required)."""


def require_adp_samples() -> None:
    """Skip the calling test when the shared ADP samples are absent — fail instead under COORD_REQUIRE_SHARED=1."""
    if ADP_SAMPLES:
        return
    message = f"shared ADP sample files are absent: no *.sample_std.json in {ADP_SAMPLE_DIR}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1)")
    pytest.skip(message)


def needs_adp_samples(test: F) -> F:
    """Decorate a test that reads the shared ADP samples (see :func:`require_adp_samples`)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        require_adp_samples()
        return test(*args, **kwargs)

    return run  # type: ignore[return-value]
