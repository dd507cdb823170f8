"""Shared fixtures: where the sample data in the repo and the public data in ../shared live."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
SHARED_DATA = Path(os.environ.get("CMM_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data; the test is skipped, with the reason shown, when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the public tick data: {path} is absent (set CMM_SHARED_DATA or add ../shared)")
    return path


@pytest.fixture
def samples() -> Path:
    return SAMPLES
