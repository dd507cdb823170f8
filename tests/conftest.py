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


def pytest_collection_modifyitems(config, items):
    """Spread the suite over pytest-xdist's workers (make test: ``-n auto --dist loadgroup``) a module at a
    time, so a module's expensive fixtures (a training run, a study) are built once, on one worker; but each
    page of tests/test_docs.py on its own, since those pages together are the longest module by far."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        group = item.nodeid if module.endswith("test_docs.py") else module
        item.add_marker(pytest.mark.xdist_group(group))
