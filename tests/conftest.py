"""Shared test fixtures: where the real data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the real sensor data (../shared/data/real beside the repository; override with PERCEPTION_REAL_DATA).
REAL_DATA = Path(os.environ.get("PERCEPTION_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        raise FileNotFoundError(
            f"real data not found at {REAL_DATA}; set PERCEPTION_REAL_DATA to the shared/data/real folder"
        )
    return REAL_DATA
