import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch):
    """Tests read the shipped configs/ and sample data by their paths from the project root."""
    monkeypatch.chdir(ROOT)
    yield


def pytest_configure(config):
    os.environ.setdefault("PYTHONHASHSEED", "0")
