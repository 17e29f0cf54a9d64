from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import settings

# The scripted model lives beside the tests; pytester runs (and their xdist workers) import it too.
TESTS_DIR = Path(__file__).parent
sys.path.insert(0, str(TESTS_DIR))

# Properties are about values, not speed: on a shared two-core CI runner one example can take longer than
# hypothesis's 200 ms deadline, which failed correct tests as "flaky". Speed is measured in benchmarks/.
settings.register_profile("faef", deadline=None)
settings.load_profile("faef")


@pytest.fixture(autouse=True)
def _no_github_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's own CI may run on GitHub Actions: the runs under test must not write to its job page."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
