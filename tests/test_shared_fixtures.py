"""Absent shared fixtures skip in a user's clone and fail where they are required (CI)."""

from __future__ import annotations

import pytest

import tests.shared_fixtures as shared


def test_absent_samples_skip_by_default(monkeypatch):
    monkeypatch.setattr(shared, "ADP_SAMPLES", [])
    monkeypatch.delenv(shared.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="shared ADP sample files are absent"):
        shared.require_adp_samples()


def test_absent_samples_fail_when_required(monkeypatch):
    monkeypatch.setattr(shared, "ADP_SAMPLES", [])
    monkeypatch.setenv(shared.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"COORD_REQUIRE_SHARED=1"):
        shared.require_adp_samples()


def test_the_shared_path_is_beside_the_checkout():
    assert (shared.REPO / "pyproject.toml").is_file()
    assert shared.SHARED.parent == shared.REPO.parent and shared.SHARED.name == "shared"
    if shared.SHARED.is_dir():  # where they exist (CI, the team's machines) the samples are found, not skipped
        assert shared.ADP_SAMPLES, f"{shared.ADP_SAMPLE_DIR} has no *.sample_std.json"
