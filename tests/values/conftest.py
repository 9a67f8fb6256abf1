"""Fixtures of the value tests: the published scores of ten real RMs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PUBLISHED_DIRS = (
    REPO / "tests" / "data" / "published" / "big2_scores_10_rms",
    REPO / ".." / "shared" / "data" / "published" / "big2_scores_10_rms",
)


@pytest.fixture(scope="session")
def published_dir() -> Path:
    for directory in PUBLISHED_DIRS:
        if directory.is_dir() and len(list(directory.glob("*.csv"))) == 10:
            return directory
    pytest.skip("the ten published score files are neither in tests/data/published nor in ../shared/data")
