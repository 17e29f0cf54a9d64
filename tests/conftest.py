from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The scripted model lives beside the tests; pytester runs (and their xdist workers) import it too.
TESTS_DIR = Path(__file__).parent
sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture(autouse=True)
def _no_github_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's own CI may run on GitHub Actions: the runs under test must not write to its job page."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
